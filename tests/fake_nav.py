"""A Dynamics NAV / Business Central SOAP page-service fake for ``responses``.

Serves the page WSDLs of ``tests/data/nav`` at the server's addresses and
answers Read, ReadMultiple (filter + bookmarkKey + setSize), Update and
UpdateMultiple the way NAV does: every record carries a ``Key`` that changes
on each update, an Update with a stale Key is refused ("Other user has modified
..."), an unknown record is a SOAP fault, and an update
leaves the elements it is not sent as they are.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import responses
from lxml import etree

from . import fake_erps

BASE = "https://nav.example.com:7047/DynamicsNAV/WS"
COMPANY = "CRONUS"
USER, PASSWORD = "NAVUSER", "nav-pass-1"
WSDLS = Path(__file__).parent / "data" / "nav"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SLUG = {
    "Customer": "customer",
    "Item": "item",
    "PostedSalesInvoices": "postedsalesinvoices",
    "PostedSalesInvLines": "postedsalesinvlines",
    "PostedSalesCreditMemos": "postedsalescreditmemos",
    "PostedSalesCrMemoLines": "postedsalescrmemolines",
}


class Nav:
    base = BASE

    def __init__(self, zone: dt.tzinfo = dt.UTC, crm_fields: dict[str, str] | None = None) -> None:
        """``crm_fields``: more CRM_<name> elements on the Customer page (name -> XML
        Schema type), as an admin's table and page extension would publish them."""
        self.zone = zone  # the service tier's time zone: where TODAY is
        self.wsdls = {page: (WSDLS / f"{page}.wsdl").read_bytes() for page in SLUG}
        flag = b'<xsd:element minOccurs="0" maxOccurs="1" name="CRM_conf_flag"'
        for name, xsd_type in (crm_fields or {}).items():
            element = '<xsd:element minOccurs="0" maxOccurs="1" ' + (
                f'name="CRM_{name}" type="xsd:{xsd_type}"/>'
            )
            choice = f'<xsd:enumeration value="CRM_{name}"/>'
            self.wsdls["Customer"] = (
                self.wsdls["Customer"]
                .replace(flag, element.encode() + b"\n          " + flag)
                .replace(
                    b'<xsd:enumeration value="CRM_conf_flag"/>',
                    choice.encode() + b'\n          <xsd:enumeration value="CRM_conf_flag"/>',
                )
            )
        self.pages: dict[str, list[dict[str, Any]]] = {
            "Customer": [
                {
                    "No": f"C{i:05d}",
                    "Name": n,
                    "E_Mail": f"{c.lower()}@example.com",
                    "Blocked": "_blank_",
                    "Customer_Posting_Group": "DOMESTIC",
                    "Last_Date_Modified": "2024-02-01",
                }
                for i, n, c in fake_erps.CUSTOMERS
            ],
            "Item": [
                {"No": f"{1000 + i}", "Description": n, "Unit_Price": p, "Unit_Cost": c}
                for i, _, n, p, c in fake_erps.PRODUCTS
            ],
            "PostedSalesInvoices": [],
            "PostedSalesInvLines": [],
            "PostedSalesCreditMemos": [],
            "PostedSalesCrMemoLines": [],
        }
        for i, cust, day, kind, state, lines in fake_erps.INVOICES:
            if state == "draft":
                continue  # posted documents only
            # documented: posted credit memos are their own table and pages (Sales Cr.Memo
            # Header/Line, pages 144 "Posted Sales Credit Memos" and 135 "Posted Sales Cr.
            # Memo Subform"), with positive quantities and amounts; their numbers come from
            # another number series; the published service names are # assumed
            memo = kind == "credit_note"
            no = f"1040{i:02d}" if memo else f"1030{i:02d}"
            header, rows = (
                ("PostedSalesCreditMemos", "PostedSalesCrMemoLines")
                if memo
                else ("PostedSalesInvoices", "PostedSalesInvLines")
            )
            amount = 0.0
            for n, (product, qty, price) in enumerate(lines, 1):
                amount += qty * price
                self.pages[rows].append(
                    {
                        "Document_No": no,
                        "Line_No": str(n * 10000),
                        "Type": "Item",
                        "No": f"{1000 + product}",
                        "Quantity": str(qty),
                        "Unit_Price": str(price),
                        "Line_Amount": f"{qty * price:.2f}",
                        "Unit_Cost_LCY": fake_erps.PRODUCTS[product - 1][4],
                    }
                )
            date = dt.date(2024, 3, day)
            self.pages[header].append(
                {
                    "No": no,
                    "Sell_to_Customer_No": f"C{cust:05d}",
                    "Posting_Date": date.isoformat(),
                    "Due_Date": (date + dt.timedelta(days=30)).isoformat(),
                    "Amount": f"{amount:.2f}",
                    **({} if memo else {"Closed": "true" if state == "paid" else "false"}),
                }
            )
        self.versions: dict[tuple[str, str], int] = {}
        for page, rows in self.pages.items():
            for n, row in enumerate(rows):
                row["Key"] = self._key(page, row, n)
        self.calls: dict[str, int] = {}
        self.fail_next: list[int | str] = []  # faults for the operations named in fail_on
        self.fail_on = ""
        xsd = "{http://www.w3.org/2001/XMLSchema}"
        self.order = {  # element order of each page's record type, as its WSDL has it
            page: [
                e.get("name")
                for e in etree.fromstring(self.wsdls[page]).iterfind(
                    f".//{xsd}complexType[@name='{page}']/{xsd}sequence/{xsd}element"
                )
            ]
            for page in SLUG
        }

    def rekey(self) -> None:
        """Give every record of ``pages`` its first Key (after replacing them)."""
        self.versions.clear()
        for page, rows in self.pages.items():
            for n, row in enumerate(rows):
                row["Key"] = self._key(page, row, n)

    def _key(self, page: str, row: dict[str, Any], n: int = 0) -> str:
        # documented: a line's primary key is (Document No., Line No.), a header's No.
        ident = row.get("Document_No", row.get("No", "")) + row.get("Line_No", "")
        version = self.versions.get((page, ident), 0) + 1
        self.versions[(page, ident)] = version
        return f"{version};{ident}{n};"

    def install(self, rsps: responses.RequestsMock) -> None:
        for page in SLUG:
            url = f"{BASE}/{COMPANY}/Page/{page}"
            rsps.add_callback("GET", url, self._wsdl(page))
            rsps.add_callback("POST", url, self._post(page))

    def _authorised(self, request: Any) -> bool:
        import base64

        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return bool(request.headers.get("Authorization") == f"Basic {expected}")

    def _wsdl(self, page: str) -> Any:
        def answer(request: Any) -> tuple[int, dict[str, str], bytes]:
            if not self._authorised(request):
                return 401, {}, b""
            return 200, {"Content-Type": "text/xml"}, self.wsdls[page]

        return answer

    def _post(self, page: str) -> Any:
        ns = f"urn:microsoft-dynamics-schemas/page/{SLUG[page]}"

        def answer(request: Any) -> tuple[int, dict[str, str], bytes]:
            if not self._authorised(request):
                return 401, {}, b""
            body = etree.fromstring(request.body).find(f"{{{SOAP}}}Body")[0]
            operation = etree.QName(body).localname
            self.calls[f"{page}.{operation}"] = self.calls.get(f"{page}.{operation}", 0) + 1
            if self.fail_next and self.fail_on in f"{page}.{operation}":
                return fake_erps.fault(self.fail_next.pop(0))  # type: ignore[return-value]
            try:
                result = getattr(self, f"_{operation}")(page, ns, body)
            except LookupError as exc:
                return 500, {"Content-Type": "text/xml"}, _fault(str(exc))
            xml = _envelope(ns, f"{operation}_Result", result, self.order[page])
            return 200, {"Content-Type": "text/xml"}, xml

        return answer

    def _find(self, page: str, no: str) -> dict[str, Any]:
        """# assumed: an unknown record is a SOAP fault with NAV's "does not exist" text."""
        for row in self.pages[page]:
            if row["No"] == no:
                return row
        raise LookupError(f"The {page} does not exist. Identification fields and values: No='{no}'")

    def _Read(self, page: str, ns: str, body: Any) -> list[Any]:
        no = body.findtext(f"{{{ns}}}No")
        return [(page, self._find(page, no))]

    def _ReadMultiple(self, page: str, ns: str, body: Any) -> list[Any]:
        # documented: ReadMultiple(filter[], bookmarkKey, setSize) returns up to setSize
        # records after the bookmarked one (learn.microsoft.com, Dynamics NAV "Basic Page
        # Operations" / ReadMultiple); # assumed: an empty Criteria filters nothing, and
        # exact-match criteria are enough (NAV's filter expressions are not modelled)
        size = int(body.findtext(f"{{{ns}}}setSize"))
        bookmark = body.findtext(f"{{{ns}}}bookmarkKey")
        rows = self.pages[page]
        for f in body.findall(f"{{{ns}}}filter"):
            field, criteria = f.findtext(f"{{{ns}}}Field"), f.findtext(f"{{{ns}}}Criteria")
            if criteria:
                rows = [r for r in rows if r.get(field) == criteria]
        start = 0
        if bookmark:
            start = next(i for i, r in enumerate(rows) if r["Key"] == bookmark) + 1
        return [("ReadMultiple_Result", [(page, r) for r in rows[start : start + size]])]

    def _update(self, page: str, ns: str, record: Any) -> dict[str, Any]:
        sent = {etree.QName(e).localname: e.text for e in record}
        row = self._find(page, sent.get("No", ""))
        # documented: Update needs the record's current Key, which changes on every
        # modification; a stale Key is the SOAP fault "Other user has modified [record
        # name]." (learn.microsoft.com/en-us/dynamics-nav/update-operation)
        if sent.get("Key") != row["Key"]:
            raise LookupError(f"Other user has modified {page} {sent.get('No', '')}.")
        nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
        values = {
            etree.QName(e).localname: None if e.get(nil) == "true" else e.text for e in record
        }
        return self.modify(page, row, values)

    def modify(self, page: str, row: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """``row`` changed as an update (or a user on the card) changes it."""
        # # assumed: elements not sent are left as they are
        row.update((k, v) for k, v in values.items() if k not in ("Key", "No"))
        if page == "Customer":
            # documented: the Customer table's OnModify sets "Last Date Modified" to TODAY
            # (server-local date)
            row["Last_Date_Modified"] = dt.datetime.now(self.zone).date().isoformat()
        row["Key"] = self._key(page, row)
        return row

    def _Update(self, page: str, ns: str, body: Any) -> list[Any]:
        return [(page, self._update(page, ns, body.find(f"{{{ns}}}{page}")))]

    def _UpdateMultiple(self, page: str, ns: str, body: Any) -> list[Any]:
        records = body.find(f"{{{ns}}}{page}_List").findall(f"{{{ns}}}{page}")
        for record in records:  # # assumed: NAV checks all before changing any
            sent = {etree.QName(e).localname: e.text for e in record}
            self._find(page, sent.get("No", ""))
        rows = [self._update(page, ns, r) for r in records]
        return [(f"{page}_List", [(page, r) for r in rows])]


def _envelope(ns: str, name: str, children: list[Any], order: list[str]) -> bytes:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"Soap": SOAP})
    body = etree.SubElement(
        etree.SubElement(env, f"{{{SOAP}}}Body"), f"{{{ns}}}{name}", nsmap={None: ns}
    )
    _append(body, ns, children, order)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def _append(parent: Any, ns: str, children: list[Any], order: list[str]) -> None:
    for tag, value in children:
        element = etree.SubElement(parent, f"{{{ns}}}{tag}")
        if isinstance(value, list):
            _append(element, ns, value, order)
        else:
            for key in order:
                text = value.get(key)
                if text is not None:
                    etree.SubElement(element, f"{{{ns}}}{key}").text = str(text)


def _fault(message: str) -> bytes:
    text = re.sub(r"[<>&]", "", message)
    return (
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body><s:Fault>'
        '<faultcode xmlns:a="urn:microsoft-dynamics-schemas/error">'
        "a:Microsoft.Dynamics.Nav.Types.Exceptions.NavCSideException</faultcode>"
        f'<faultstring xml:lang="en-US">{text}</faultstring>'
        f'<detail><string xmlns="http://schemas.microsoft.com/2003/10/Serialization/">{text}'
        "</string></detail></s:Fault></s:Body></s:Envelope>"
    ).encode()
