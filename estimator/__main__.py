from joulecast.estimator.cli import main

raise SystemExit(main())
