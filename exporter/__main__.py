from joulecast.exporter.cli import main

raise SystemExit(main())
