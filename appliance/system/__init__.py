"""systemd integration: readiness and watchdog notifications, the watchdog heartbeat, journald logging."""
