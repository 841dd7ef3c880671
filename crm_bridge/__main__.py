from crm_bridge.cli import main

main()
