"""The operator console: server-rendered pages, a little plain JavaScript, live updates."""
