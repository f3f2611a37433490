"""The ``[web]`` section: the LMS, JSON API and inference API server."""
from __future__ import annotations

from appliance.config import section, setting


@section("web")
class WebSettings:
    """The web service (gunicorn with threaded workers)."""

    host: str = setting("127.0.0.1", "Address to listen on; a box on a classroom LAN uses 0.0.0.0.")
    port: int = setting(8080, "TCP port of the LMS, the JSON API and the inference API.", minimum=0)
    workers: int = setting(2, "Worker processes; each loads the models once and shares them between its threads.", minimum=1)
    threads: int = setting(16, "Threads per worker process.", minimum=1)
    reuse_port: bool = setting(True, "Give each worker its own listening socket (SO_REUSEPORT) so the kernel spreads new connections over the workers; on one shared socket a classroom's keep-alive connections can all land on one worker and leave a core idle. A worker opens its socket only once its models are loaded, and the service refuses to start when the port is already taken. Ignored with port 0.")
    malloc_arenas: int = setting(2, "Most glibc malloc arenas per web process (like MALLOC_ARENA_MAX); 16 threads would otherwise grow a dozen arenas that keep about 10 MB of freed memory per worker. 0 keeps the C library's default.", minimum=0)
    secret_key: str = setting("", "Key that signs session cookies; empty means generated once and kept in data_dir.", secret=True)
    default_language: str = setting("en", "Language when neither the class nor the browser picks one (one the pages are translated into).", choices=("en", "es"))
    secure_cookies: bool = setting(False, "Mark cookies Secure (only when the box is served over HTTPS).")
    login_max_failures: int = setting(5, "Failed sign-ins allowed for one account from one device within login_window_s before a pause; four times as many for one account from all devices, or for one device trying any account (appliance/people/throttle.py). A new PIN or password, or `classroom-edge users unlock`, lifts a pause.", minimum=1)
    login_window_s: int = setting(300, "Window for counting failed sign-ins, in seconds.", minimum=1)
    max_upload_mb: int = setting(512, "Largest course bundle accepted through the admin page, in MB.", minimum=1)
