"""MCP stdio servers bundled with the runner (the local executor, the codex exec bridge)."""
