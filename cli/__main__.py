from orderguard.commands import main

main()
