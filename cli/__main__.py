from orderguard.cli.commands import main

main()
