from facewatch.cli.main import main

raise SystemExit(main())
