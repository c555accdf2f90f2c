from boltzkinema.cli import main

raise SystemExit(main())
