from storyloom.cli.worker import main

raise SystemExit(main())
