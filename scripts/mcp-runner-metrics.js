#!/bin/sh
":" //; exec "$(dirname "$0")/_runner-python.sh" metrics "$@"
// Write the metrics summary (docs/interface.md section 8). The work is done in Python
// (bin/mcp-runner-metrics). This file is both a shell script and a Node script:
// run directly, sh reads line 2 and execs the Python wrapper, so no Node is
// needed; under `node` that line is a string and a comment, and the code below
// runs the same wrapper, passing the arguments and the exit status through.
// Dynamic import() works whether Node loads this file as CommonJS or as an ES
// module (a consumer's package.json may say "type": "module").
Promise.all([import("node:child_process"), import("node:path"), import("node:os")]).then(
  ([childProcess, path, os]) => {
    const runner = path.join(path.dirname(process.argv[1]), "_runner-python.sh");
    const result = childProcess.spawnSync(runner, ["metrics", ...process.argv.slice(2)], { stdio: "inherit" });
    if (result.error) {
      console.error(`Cannot run ${runner}: ${result.error.message}`);
      process.exit(1);
    }
    if (result.signal) {
      process.exit(128 + (os.constants.signals[result.signal] || 0));
    }
    process.exit(result.status);
  },
);
