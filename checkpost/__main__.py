from checkpost.cli import main

raise SystemExit(main())
