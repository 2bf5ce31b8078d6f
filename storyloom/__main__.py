from storyloom.cli.main import main

raise SystemExit(main())
