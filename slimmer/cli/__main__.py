from slimmer.cli import main

main()
