"""One module per command: parse the arguments, call the core, print, return an exit code."""
