"""``python -m appliance`` is the same as the ``classroom-edge`` command."""
from appliance.cli.main import main

raise SystemExit(main())
