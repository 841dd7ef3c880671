"""JSON Schemas of crm-bridge: canonical records, the config file, field declarations.

Data only; ``crm_bridge.jsonschemas.load`` reads them.
"""
