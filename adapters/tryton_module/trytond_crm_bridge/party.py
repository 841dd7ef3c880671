import datetime
from decimal import Decimal

from sql import Cast, Literal, Null
from sql.functions import Function

from trytond import backend
from trytond.i18n import gettext
from trytond.model import DictSchemaMixin, ModelSQL, ModelView, fields
from trytond.model.exceptions import ValidationError
from trytond.model.fields.field import SQL_OPERATORS
from trytond.pool import Pool, PoolMeta
from trytond.rpc import RPC
from trytond.transaction import Transaction

# Accepted Python types per Dict key type.  bool is an int subclass, so
# integer and float keys reject it explicitly.
_TYPES = {
    'boolean': (bool,),
    'integer': (int,),
    'float': (int, float),
    'numeric': (int, float, Decimal),
    'char': (str,),
    'selection': (str,),
    'date': (datetime.date,),
    'datetime': (datetime.datetime,),
    }


# The CRM list columns: party field name -> (crm key, key type).  A fixed
# set: a column is a field of the model, so a new key gets a column with a
# release of this module (one line here and one in view/party_crm_list.xml);
# every key, listed here or not, shows on the CRM tab.
COLUMNS = {
    'crm_rfm_segment': ('rfm_segment', 'selection'),
    'crm_loyalty_tier': ('loyalty_tier', 'selection'),
    'crm_abc_xyz': ('abc_xyz', 'selection'),
    'crm_abc_class': ('abc_class', 'selection'),
    'crm_revenue_12m': ('kpi_revenue_12m', 'numeric'),
    'crm_churn_risk': ('kpi_churn_risk', 'numeric'),
    'crm_overdue_amount': ('kpi_overdue_amount', 'numeric'),
    'crm_avg_days_late': ('kpi_avg_days_late', 'numeric'),
    'crm_clv_12m': ('kpi_clv_12m', 'numeric'),
    'crm_next_best_offer': ('next_best_offer', 'char'),
    }


class CrmField(DictSchemaMixin, ModelSQL, ModelView):
    "CRM Field"
    __name__ = 'crm_bridge.field'
    owner = fields.Char(
        "Owner", readonly=True,
        help="The crm-bridge plugin that declared and writes this field.")
    sequence = fields.Integer(
        "Sequence",
        help="Where the field shows on the CRM tab: by topic, then within it.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__ = set()
        cls._order.insert(0, ('sequence', 'ASC NULLS LAST'))

    @classmethod
    def get_keys(cls, records):
        keys = super().get_keys(records)
        # The client sorts the keys of a Dict widget by 'sequence'.
        for key in keys:
            if key['sequence'] is None:
                key['sequence'] = 10 ** 6
        return keys

    @classmethod
    def crm_selection(cls, key):
        "The choices of a selection key as declared: [(value, label), ...]"
        fields = cls.search([('name', '=', key)], limit=1)
        choices = [(None, '')]
        if fields:
            for line in (fields[0].selection or '').splitlines():
                if ':' in line:
                    value, label = line.split(':', 1)
                    choices.append((value.strip(), label.strip()))
        return choices


class _JsonExtract(Function):
    "SQLite: json_extract(column, path)"
    __slots__ = ()
    _function = 'JSON_EXTRACT'


class _JsonbExtractPathText(Function):
    "PostgreSQL: jsonb_extract_path_text(column, key, ...)"
    __slots__ = ()
    _function = 'JSONB_EXTRACT_PATH_TEXT'


def crm_value_sql(column, key, type_):
    """The SQL expression of one key of the crm dict, typed for comparing
    and ordering.  Decimals are stored as {"__class__": "Decimal",
    "decimal": "12.30"}: their number is the "decimal" member."""
    path = [key, 'decimal'] if type_ == 'numeric' else [key]
    if backend.name == 'postgresql':
        value = _JsonbExtractPathText(Cast(column, 'jsonb'), *path)
    else:
        value = _JsonExtract(column, '$.' + '.'.join(path))
    if type_ == 'numeric':
        value = Cast(value, Transaction().database.sql_type('NUMERIC').base)
    elif type_ == 'integer':
        value = Cast(value, Transaction().database.sql_type('INTEGER').base)
    return value


def _order_column(name):
    key, type_ = COLUMNS[name]

    @classmethod
    def order(cls, tables):
        table, _ = tables[None]
        return [crm_value_sql(table.crm, key, type_)]
    return order


def _column(name, string, help=''):
    key, type_ = COLUMNS[name]
    if type_ == 'selection':
        field = fields.Selection(
            'get_crm_selection_%s' % key, string, help=help)
    elif type_ == 'numeric':
        field = fields.Numeric(string, digits=(16, 2), help=help)
    else:
        field = fields.Char(string, help=help)
    return fields.Function(
        field, 'get_crm_columns', searcher='search_crm_column')


def _same(a, b):
    "Equal as CRM values: numbers by value, anything else by type and value."
    if a is None or b is None:
        return a is None and b is None
    numbers = (int, float, Decimal)
    if (isinstance(a, numbers) and isinstance(b, numbers)
            and not isinstance(a, bool) and not isinstance(b, bool)):
        return Decimal(str(a)) == Decimal(str(b))
    return type(a) is type(b) and a == b


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'
    crm = fields.Dict(
        'crm_bridge.field', "CRM", readonly=True,
        help="Values computed and written by crm-bridge.")
    crm_rfm_segment = _column('crm_rfm_segment', "RFM Segment")
    crm_loyalty_tier = _column('crm_loyalty_tier', "Loyalty Tier")
    crm_abc_xyz = _column('crm_abc_xyz', "ABC/XYZ Class")
    crm_abc_class = _column('crm_abc_class', "ABC Class")
    crm_revenue_12m = _column('crm_revenue_12m', "Revenue (12m)")
    crm_churn_risk = _column('crm_churn_risk', "Churn Risk")
    crm_overdue_amount = _column('crm_overdue_amount', "Overdue Amount")
    crm_avg_days_late = _column('crm_avg_days_late', "Average Days Late")
    crm_clv_12m = _column('crm_clv_12m', "Predicted CLV (12m)")
    crm_next_best_offer = _column('crm_next_best_offer', "Next Best Offer")
    crm_customers = fields.Function(
        fields.Integer("Customers", help="1 for each customer: a count."),
        'get_crm_columns')

    order_crm_rfm_segment = _order_column('crm_rfm_segment')
    order_crm_loyalty_tier = _order_column('crm_loyalty_tier')
    order_crm_abc_xyz = _order_column('crm_abc_xyz')
    order_crm_abc_class = _order_column('crm_abc_class')
    order_crm_revenue_12m = _order_column('crm_revenue_12m')
    order_crm_churn_risk = _order_column('crm_churn_risk')
    order_crm_overdue_amount = _order_column('crm_overdue_amount')
    order_crm_avg_days_late = _order_column('crm_avg_days_late')
    order_crm_clv_12m = _order_column('crm_clv_12m')
    order_crm_next_best_offer = _order_column('crm_next_best_offer')

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({
                'crm_apply': RPC(readonly=False),
                })

    @classmethod
    def get_crm_selection_rfm_segment(cls):
        return Pool().get('crm_bridge.field').crm_selection('rfm_segment')

    @classmethod
    def get_crm_selection_loyalty_tier(cls):
        return Pool().get('crm_bridge.field').crm_selection('loyalty_tier')

    @classmethod
    def get_crm_selection_abc_xyz(cls):
        return Pool().get('crm_bridge.field').crm_selection('abc_xyz')

    @classmethod
    def get_crm_selection_abc_class(cls):
        return Pool().get('crm_bridge.field').crm_selection('abc_class')

    @classmethod
    def get_crm_columns(cls, parties, names):
        result = {name: {} for name in names}
        for party in parties:
            crm = party.crm or {}
            for name in names:
                if name == 'crm_customers':
                    value = 1
                else:
                    key, type_ = COLUMNS[name]
                    value = crm.get(key)
                    if type_ == 'numeric' and value is not None:
                        value = Decimal(str(value))
                result[name][party.id] = value
        return result

    @classmethod
    def search_crm_column(cls, name, clause):
        key, type_ = COLUMNS[name]
        _, operator, value = clause[:3]
        if type_ != 'numeric':
            return [('crm.' + key, operator, value) + tuple(clause[3:])]
        table = cls.__table__()
        column = crm_value_sql(table.crm, key, type_)
        if value is None:
            where = column == Null if operator == '=' else column != Null
        else:
            if operator.endswith('in'):
                value = [Decimal(str(v)) for v in value if v is not None]
            else:
                value = Decimal(str(value))
            if backend.name == 'sqlite':
                numeric = Transaction().database.sql_type('NUMERIC').base
                if isinstance(value, list):
                    value = [Cast(Literal(float(v)), numeric) for v in value]
                else:
                    value = Cast(Literal(float(value)), numeric)
            where = SQL_OPERATORS[operator](column, value)
        return [('id', 'in', table.select(table.id, where=where))]

    @classmethod
    def crm_apply(cls, changes):
        """Change CRM keys only where they still hold the values expected.

        ``changes``: ``[[party id, {key: new value or None}, {key: expected
        value or None}], ...]``; ``None`` as a new value removes the key, a key
        missing from the expected values is changed whatever it holds.  Other
        keys are left as they are.  Returns the conflicts, ``[[party id, key,
        value found], ...]``: keys not changed because they held another value.
        A key that already holds its new value is neither written nor a
        conflict.  All in one transaction, the parties locked.
        """
        parties = cls.browse([int(c[0]) for c in changes])
        cls.lock(parties)
        conflicts, args = [], []
        for party, (_, values, expected) in zip(parties, changes):
            crm = dict(party.crm or {})
            changed = False
            for key, new in values.items():
                held = crm.get(key)
                if _same(held, new):
                    continue
                if key in expected and not _same(held, expected[key]):
                    conflicts.append([party.id, key, held])
                    continue
                if new is None:
                    crm.pop(key, None)
                else:
                    crm[key] = new
                changed = True
            if changed:
                args.extend([[party], {'crm': crm}])
        if args:
            cls.write(*args)
        return conflicts

    @classmethod
    def validate_fields(cls, parties, field_names):
        super().validate_fields(parties, field_names)
        if field_names and 'crm' not in field_names:
            return
        cls._check_crm(parties)

    @classmethod
    def _check_crm(cls, parties):
        CrmField = Pool().get('crm_bridge.field')
        keys = None
        for party in parties:
            if not party.crm:
                continue
            if keys is None:
                keys = {k.name: k for k in CrmField.search([])}
            for name, value in party.crm.items():
                key = keys.get(name)
                args = {'key': name, 'party': party.rec_name, 'value': value}
                if key is None:
                    raise ValidationError(
                        gettext('crm_bridge.msg_crm_unknown_key', **args))
                if value is None:
                    continue
                types = _TYPES.get(key.type_, (object,))
                if (not isinstance(value, types)
                        or (isinstance(value, bool)
                            and key.type_ != 'boolean')
                        or (key.type_ == 'date'
                            and isinstance(value, datetime.datetime))):
                    raise ValidationError(gettext(
                            'crm_bridge.msg_crm_bad_type',
                            type=key.type_, **args))
                if key.type_ == 'selection':
                    choices = {
                        line.split(':', 1)[0].strip()
                        for line in (key.selection or '').splitlines()}
                    if value not in choices:
                        raise ValidationError(gettext(
                                'crm_bridge.msg_crm_bad_choice', **args))
