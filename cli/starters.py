# ruff: noqa: E501  (TOML text: its lines are as long as a mapping's)
"""Starter mapping files that ``crm-bridge init --profile rest|soap`` writes beside
the config: every key commented, shaped like a real mapping so that it loads."""

REST = """\
# crm-bridge mapping for a REST API (docs/adapters.md describes every key).
# Replace the paths and field names with your ERP's; run crm-bridge doctor after each change.
protocol = "rest"
title = "My ERP (REST)"
page_size = 500

[auth]                      # header (an API key), bearer, basic, or session login
type = "header"
header = "X-API-Key"
value = "{api_key}"

[tables.customers]          # one request per page; records = where the list is in the answer
request = { path = "/api/customers", params = { offset = "{offset}", limit = "{limit}" }, records = "data" }
paging = { style = "offset" }
[tables.customers.fields]   # canonical name = the ERP's field (dotted paths reach inside)
customer_id = "id"
name = "name"

[tables.invoices]
request = { path = "/api/invoices", params = { offset = "{offset}", limit = "{limit}" }, records = "data" }
paging = { style = "offset" }
[tables.invoices.fields]
invoice_id = "id"
customer_id = "customer_id"
kind = { default = "invoice" }
state = { path = "status", map = { draft = "draft", open = "posted", paid = "paid", cancelled = "cancelled" } }
date = "date"
currency = { default = "EUR" }
amount = "total_net"

[write]                     # merge: the ERP changes only the keys sent
mode = "merge"
request = { method = "PUT", path = "/api/customers/{id}", body = "{values}" }
field_name = "crm_{name}"

[manual]                    # how the admin adds the fields where the API cannot
instructions = "add the crm_* custom fields to the customer record"
"""

SOAP = """\
# crm-bridge mapping for a SOAP web service (docs/adapters.md describes every key).
# Document/literal or rpc/literal services only: an rpc/encoded one is refused.
# Replace the service, operations and element names with your ERP's WSDL.
protocol = "soap"
title = "My ERP (SOAP)"
page_size = 200
# schema_cache = "xsd/"     # local copies of schemas the WSDL imports from other hosts

[wsdl]                      # service name -> WSDL file (next to this file) or URL
erp = "{url}/?wsdl"

[auth]                      # basic, wsse (UsernameToken), soap_header, or none
type = "basic"

[tables.customers]
request = { service = "erp", operation = "ListCustomers", args = { page = "{page}", size = "{limit}" } }
paging = { style = "page" }
[tables.customers.fields]
customer_id = "id"
name = "name"

[tables.invoices]
request = { service = "erp", operation = "ListInvoices", args = { page = "{page}", size = "{limit}" } }
paging = { style = "page" }
[tables.invoices.fields]
invoice_id = "id"
customer_id = "customer"
kind = { default = "invoice" }
state = { path = "status", map = { DRAFT = "draft", POSTED = "posted", PAID = "paid" } }
date = "date"
currency = { default = "EUR" }
amount = "total"

[write]                     # replace: the record is read, crm-bridge's elements changed, sent back
mode = "replace"
read = { service = "erp", operation = "GetCustomer", args = { id = "{id}" } }
request = { service = "erp", operation = "UpdateCustomer", args = { customer = "{record}" } }
field_name = "crm_{name}"

[manual]
instructions = "add the crm_* elements to the customer type of the service"
"""

STARTERS = {"rest": REST, "soap": SOAP}
