"""Companion Tryton module of crm-bridge.

Adds one ``Dict`` field, ``crm``, on ``party.party``.  Its keys are the
custom-field declarations that crm-bridge creates over RPC when it provisions
fields; the module refuses values whose key, type or choice is not declared.
"""
