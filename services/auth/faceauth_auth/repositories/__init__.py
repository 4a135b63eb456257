"""Database reads and writes, one module per aggregate; callers own the session and its transaction."""
