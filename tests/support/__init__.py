"""Test helpers: a real PostgreSQL server, headless Chromium, small or read-only mounts."""
