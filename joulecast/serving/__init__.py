"""The daemons' serving room: what the exporter and the estimator share as network services.

- ``server.py``: the HTTP/1.1 server (asyncio event loop, ``h11`` parser, bounded thread
  lanes for scrapes and for the API), ``http1.py``: one connection's request/answer cycle;
- ``limits.py``: connection cap, deadlines and worker counts, with their ``--web.*`` flags;
- ``auth.py``: basic auth against bcrypt hashes, bounded in concurrency and rate;
- ``webconfig.py``: the exporter-toolkit web configuration file (TLS, users), reloadable;
- ``exposition.py``: the fast ``/metrics`` encoder; ``daemon.py``: common flags, standard
  collectors and the server as the flags ask; ``flags.py``, ``logs.py``, ``buildinfo.py``.

The training client (the rest of the ``joulecast`` package) never imports this room; it
imports the client at most (``tests/test_layout.py`` checks both directions).
"""
