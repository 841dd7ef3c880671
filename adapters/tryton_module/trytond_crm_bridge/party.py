import datetime
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import DictSchemaMixin, ModelSQL, ModelView, fields
from trytond.model.exceptions import ValidationError
from trytond.pool import Pool, PoolMeta
from trytond.rpc import RPC

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


class CrmField(DictSchemaMixin, ModelSQL, ModelView):
    "CRM Field"
    __name__ = 'crm_bridge.field'
    owner = fields.Char(
        "Owner", readonly=True,
        help="The crm-bridge plugin that declared and writes this field.")

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__access__ = set()


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

    @classmethod
    def __setup__(cls):
        super().__setup__()
        cls.__rpc__.update({
                'crm_apply': RPC(readonly=False),
                })

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
