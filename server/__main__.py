from reelfork.server.cli import main

main()
