from joulecast.cli import main

raise SystemExit(main())
