"""Core of the MCP runner: runs, manifests, pointers, metrics and migration.

Nothing in this package prints or parses command lines except ``commands/``;
only ``mcp_client``, ``servers/``, ``worker`` and ``commands/serve`` (once it
serves) import the MCP SDK.
"""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)
