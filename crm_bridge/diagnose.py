"""Diagnose: how controlled is the company's customer process, judged from its ERP data.

Each parameter a managed customer process tracks is marked ``+`` (the data is
there and consistent), ``+/-`` (there but partial) or ``-`` (absent), with the
evidence (counts, coverage) and what to start recording.  The parameters are
grouped under the five cross-functional CRM processes of Payne and Frow:
strategy development, value creation, multichannel integration, information
management and performance assessment.  The thresholds are stated in each
finding so the verdict can be argued with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import polars as pl

from crm_bridge.i18n import N_, _, number, percent
from crm_bridge.snapshot import Snapshot

PROCESSES = (
    N_("Strategy development"),
    N_("Value creation"),
    N_("Multichannel integration"),
    N_("Information management"),
    N_("Performance assessment"),
)
GOOD = 0.9  # coverage at or above which data counts as consistent
PARTIAL = 0.5


@dataclass(frozen=True)
class Finding:
    process: str
    parameter: str
    status: str  # "+", "+/-" or "-"
    evidence: str
    advice: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _finding(process: str, parameter: str, status: str, evidence: str, advice: str) -> Finding:
    """A finding in the language in effect; where the data is already good the
    advice is to keep it that way."""
    if status == "+":
        advice = N_("keep it up")
    return Finding(_(process), _(parameter), status, evidence, _(advice))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _grade(coverage: float) -> str:
    return "+" if coverage >= GOOD else "+/-" if coverage >= PARTIAL else "-"


def _lines(s: Snapshot) -> pl.DataFrame:
    """The sales lines two checks read: joined to their invoices once, not per check."""
    query = s.sales_lines().select("customer_id", "product_id", "amount")
    return s.shared("crm_bridge.diagnose.lines", lambda: query).collect()


def products_per_customer(s: Snapshot) -> Finding:
    lines = _lines(s)
    with_product = lines.filter(pl.col("product_id").is_not_null()).height
    coverage = _share(with_product, lines.height)
    buyers = lines.filter(pl.col("product_id").is_not_null())["customer_id"].n_unique()
    status = "-" if not lines.height else _grade(coverage)
    return _finding(
        PROCESSES[0],
        N_("Products per customer"),
        status,
        _(
            "{lines} sales lines, {coverage} name a product; {buyers} customers with "
            "product history"
        ).format(lines=number(lines.height), coverage=percent(coverage), buyers=number(buyers)),
        N_("record the product on every invoice line (not free text)"),
    )


def sales_per_customer(s: Snapshot) -> Finding:
    posted = s.sales().collect()
    customers = s.customers.height
    buying = posted["customer_id"].n_unique()
    status = "+" if posted.height else "-"
    return _finding(
        PROCESSES[0],
        N_("Sales volume per customer"),
        status,
        _("{invoices} posted invoices for {buying} of {customers} customers").format(
            invoices=number(posted.height), buying=number(buying), customers=number(customers)
        ),
        N_("post customer invoices in the ERP"),
    )


def sales_per_product(s: Snapshot) -> Finding:
    lines = _lines(s)
    priced = lines.filter(pl.col("product_id").is_not_null() & (pl.col("amount") != 0)).height
    coverage = _share(priced, lines.height)
    products = lines["product_id"].drop_nulls().n_unique()
    status = "-" if not lines.height else _grade(coverage)
    return _finding(
        PROCESSES[0],
        N_("Sales volume per product"),
        status,
        _("{products} products sold; {coverage} of lines carry a product and an amount").format(
            products=number(products), coverage=percent(coverage)
        ),
        N_("use products with prices on invoice lines"),
    )


def offers_history(s: Snapshot) -> Finding:
    orders = s.sale_orders
    quotes = orders.filter(pl.col("state").is_in(["quotation", "confirmed", "cancelled"])).height
    with_lines = s.sale_order_lines.filter(pl.col("product_id").is_not_null())[
        "order_id"
    ].n_unique()
    coverage = _share(with_lines, orders.height)
    status = "-" if not quotes else _grade(coverage)
    return _finding(
        PROCESSES[1],
        N_("History of offers made"),
        status,
        _("{orders} quotes and orders; {coverage} list the products offered").format(
            orders=number(orders.height), coverage=percent(coverage)
        ),
        N_("send quotes from the ERP's sales module, with product lines"),
    )


def refusal_categories(s: Snapshot) -> Finding:
    lost = s.opportunities.filter(pl.col("state") == "lost")
    cancelled = s.sale_orders.filter(pl.col("state") == "cancelled").height
    reasoned = lost.filter(pl.col("lost_reason").is_not_null()).height
    coverage = _share(reasoned, lost.height)
    if not lost.height and not cancelled:
        status = "-"
    elif not lost.height:
        status = "+/-"
    else:
        status = _grade(coverage)
    return _finding(
        PROCESSES[1],
        N_("Refusal categories by sale stage"),
        status,
        _(
            "{lost} lost opportunities ({coverage} with a reason), "
            "{cancelled} cancelled quotes (no reason field)"
        ).format(lost=number(lost.height), coverage=percent(coverage), cancelled=number(cancelled)),
        N_("record why each deal was lost, from a fixed list of reasons"),
    )


def complaints(s: Snapshot) -> Finding:
    rows = s.complaints
    described = rows.filter(
        pl.col("description").is_not_null() | pl.col("type").is_not_null()
    ).height
    coverage = _share(described, rows.height)
    status = "-" if not rows.height else _grade(coverage)
    return _finding(
        PROCESSES[1],
        N_("Complaints received (count and content)"),
        status,
        _("{complaints} complaints; {coverage} say what they are about").format(
            complaints=number(rows.height), coverage=percent(coverage)
        ),
        N_("record complaints in the ERP with a type and the customer's words"),
    )


def contacts(s: Snapshot) -> Finding:
    return _finding(
        PROCESSES[2],
        N_("Tasks and contacts per customer"),
        "-",
        _("crm-bridge reads no calls, meetings or tasks from this ERP"),
        N_("log calls, visits and e-mails against the customer in the ERP's activities"),
    )


def document_flow(s: Snapshot) -> Finding:
    payments = s.payments
    linked = payments.filter(pl.col("invoice_id").is_not_null()).height
    posted = s.sales().collect()
    dated = posted.filter(pl.col("due_date").is_not_null()).height
    coverage = min(_share(linked, payments.height), _share(dated, posted.height))
    status = "-" if not payments.height and not posted.height else _grade(coverage)
    return _finding(
        PROCESSES[3],
        N_("Document flow per customer"),
        status,
        _(
            "{payments} payments ({matched} matched to an invoice); "
            "{dated} of invoices have a due date"
        ).format(
            payments=number(payments.height),
            matched=percent(_share(linked, payments.height)),
            dated=percent(_share(dated, posted.height)),
        ),
        N_("reconcile payments with their invoices and give invoices payment terms"),
    )


def dynamics(s: Snapshot) -> Finding:
    posted = s.sales().collect()
    if not posted.height:
        return _finding(
            PROCESSES[3],
            N_("Sales dynamics per customer"),
            "-",
            _("no posted invoices"),
            N_("post customer invoices in the ERP"),
        )
    first = posted["date"].min()
    months = (s.as_of.year - first.year) * 12 + s.as_of.month - first.month  # type: ignore[union-attr]
    status = "+" if months >= 24 else "+/-" if months >= 12 else "-"
    return _finding(
        PROCESSES[3],
        N_("Sales dynamics per customer"),
        status,
        _("{months} months of invoices (growth needs 24: this year against last)").format(
            months=months
        ),
        N_("keep the invoice history in the ERP (do not archive it away)"),
    )


def funnel(s: Snapshot) -> Finding:
    opportunities = s.opportunities
    stages = set(opportunities["state"].drop_nulls().unique().to_list())
    wanted = {N_("lead"), N_("opportunity"), N_("won"), N_("lost")}
    present = len(stages & wanted)
    status = "-" if not opportunities.height else "+" if present == 4 else "+/-"
    return _finding(
        PROCESSES[4],
        N_("Sales funnel"),
        status,
        _("{opportunities} opportunities; stages recorded: {stages}").format(
            opportunities=number(opportunities.height),
            stages=", ".join(_(s) for s in sorted(stages & wanted)) or _("none"),
        ),
        N_("track every lead to won or lost in the ERP's opportunities"),
    )


def marketing(s: Snapshot) -> Finding:
    return _finding(
        PROCESSES[4],
        N_("Marketing effectiveness"),
        "-",
        _("crm-bridge reads no campaign or lead source from this ERP"),
        N_("record the campaign or source of each lead, then compare won rates per source"),
    )


CHECKS: tuple[Callable[[Snapshot], Finding], ...] = (
    products_per_customer,
    sales_per_customer,
    sales_per_product,
    offers_history,
    refusal_categories,
    complaints,
    contacts,
    document_flow,
    dynamics,
    funnel,
    marketing,
)


def diagnose(snapshot: Snapshot) -> list[Finding]:
    return [check(snapshot) for check in CHECKS]


def frame(findings: list[Finding]) -> pl.DataFrame:
    return pl.DataFrame([f.as_dict() for f in findings])
