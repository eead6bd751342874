from venvpack.cli import main

main()
