"""A real SOAP service on loopback (spyne, document/literal) shaped like an ERP
whose update replaces the whole record: the generic SOAP adapter's test ERP.

Customers carry the fields an administrator added for crm-bridge
(``crm_conf_*``); ``UpdateCustomer`` blanks every element it is not sent, so
only a read-modify-write keeps the other fields.  Calls need an ``AuthHeader``
SOAP header with the right user and password.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal as D
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne import (
    Application,
    Array,
    Boolean,
    ComplexModel,
    Date,
    Decimal,
    Fault,
    Integer,
    ServiceBase,
    Unicode,
    rpc,
)
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from . import fake_erps

NS = "urn:example:crm-erp"
USER, PASSWORD = "crm", "soap-secret"


class AuthHeader(ComplexModel):
    __namespace__ = NS
    username = Unicode
    password = Unicode


class Customer(ComplexModel):
    __namespace__ = NS
    id = Unicode
    name = Unicode
    code = Unicode
    email = Unicode
    active = Boolean
    crm_conf_segment = Unicode
    crm_conf_score = Integer
    crm_conf_spend = Decimal
    crm_conf_since = Date
    crm_conf_note = Unicode
    crm_conf_flag = Boolean


class Product(ComplexModel):
    __namespace__ = NS
    id = Unicode
    code = Unicode
    name = Unicode
    price = Decimal


class Line(ComplexModel):
    __namespace__ = NS
    id = Unicode
    product = Unicode
    quantity = Decimal
    price = Decimal
    amount = Decimal


class Invoice(ComplexModel):
    __namespace__ = NS
    id = Unicode
    customer = Unicode
    number = Unicode
    type = Unicode
    status = Unicode
    date = Date
    due = Date
    total = Decimal
    lines = Array(Line)


class Store:
    def __init__(self) -> None:
        self.customers = {
            str(i): {
                "id": str(i),
                "name": n,
                "code": c,
                "email": f"{c.lower()}@example.com",
                "active": True,
            }
            for i, n, c in fake_erps.CUSTOMERS
        }
        self.products = [
            {"id": str(i), "code": r, "name": n, "price": D(p)}
            for i, r, n, p, _ in fake_erps.PRODUCTS
        ]
        self.invoices = []
        line_id = 500
        for i, cust, day, kind, state, lines in fake_erps.INVOICES:
            sign = -1 if kind == "credit_note" else 1
            rows = []
            for product, qty, price in lines:
                line_id += 1
                rows.append(
                    {
                        "id": str(line_id),
                        "product": str(product),
                        "quantity": D(qty),
                        "price": D(str(price)),
                        "amount": D(str(sign * qty * price)),
                    }
                )
            date = dt.date(2024, 3, day)
            self.invoices.append(
                {
                    "id": str(i),
                    "customer": str(cust),
                    "number": f"SI{i:04d}",
                    "type": "CREDIT" if kind == "credit_note" else "INVOICE",
                    "status": state.upper(),
                    "date": date,
                    "due": date + dt.timedelta(days=30),
                    "total": sum((r["amount"] for r in rows), D(0)),
                    "lines": rows,
                }
            )
        self.calls: dict[str, int] = {}


STORE = Store()


def _auth(ctx: Any, operation: str) -> None:
    STORE.calls[operation] = STORE.calls.get(operation, 0) + 1
    header = ctx.in_header
    if header is None or header.username != USER or header.password != PASSWORD:
        raise Fault("Client.Authentication", "The user name or password is incorrect")


def _page(rows: list[Any], page: int, size: int) -> list[Any]:
    return rows[page * size : (page + 1) * size]


def _replace(record: Customer) -> None:
    if record.id not in STORE.customers:
        raise Fault("Client.NotFound", f"Customer {record.id} does not exist")
    # A full replace: what is not sent is blanked.
    STORE.customers[record.id] = {k: getattr(record, k) for k in Customer._type_info}


class ErpService(ServiceBase):
    __in_header__ = AuthHeader

    @rpc(Integer, Integer, _returns=Array(Customer))
    def ListCustomers(ctx, page, size):
        _auth(ctx, "ListCustomers")
        return [Customer(**c) for c in _page(list(STORE.customers.values()), page, size)]

    @rpc(Integer, Integer, _returns=Array(Product))
    def ListProducts(ctx, page, size):
        _auth(ctx, "ListProducts")
        return [Product(**p) for p in _page(STORE.products, page, size)]

    @rpc(Integer, Integer, _returns=Array(Invoice))
    def ListInvoices(ctx, page, size):
        _auth(ctx, "ListInvoices")
        return [
            Invoice(**{**i, "lines": [Line(**r) for r in i["lines"]]})
            for i in _page(STORE.invoices, page, size)
        ]

    @rpc(Unicode, _returns=Customer)
    def GetCustomer(ctx, id):
        _auth(ctx, "GetCustomer")
        if id not in STORE.customers:
            raise Fault("Client.NotFound", f"Customer {id} does not exist")
        return Customer(**STORE.customers[id])

    @rpc(Customer, _returns=Customer)
    def UpdateCustomer(ctx, customer):
        _auth(ctx, "UpdateCustomer")
        _replace(customer)
        return Customer(**STORE.customers[customer.id])

    @rpc(Array(Customer), _returns=Integer)
    def UpdateCustomers(ctx, customers):
        _auth(ctx, "UpdateCustomers")
        unknown = [c.id for c in customers if c.id not in STORE.customers]
        if unknown:  # all or nothing, like a database transaction
            raise Fault("Client.NotFound", f"Customer {unknown[0]} does not exist")
        for record in customers:
            _replace(record)
        return len(customers)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def running() -> Iterator[str]:
    """Serve a fresh store on a free loopback port; yield the base URL."""
    global STORE
    STORE = Store()
    app = Application(
        [ErpService], tns=NS, in_protocol=Soap11(validator="lxml"), out_protocol=Soap11()
    )
    server = make_server("127.0.0.1", 0, WsgiApplication(app), _Server, _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
