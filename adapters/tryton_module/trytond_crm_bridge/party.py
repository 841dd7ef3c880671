import datetime
from decimal import Decimal

from trytond.i18n import gettext
from trytond.model import DictSchemaMixin, ModelSQL, ModelView, fields
from trytond.model.exceptions import ValidationError
from trytond.pool import Pool, PoolMeta

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


class Party(metaclass=PoolMeta):
    __name__ = 'party.party'
    crm = fields.Dict(
        'crm_bridge.field', "CRM", readonly=True,
        help="Values computed and written by crm-bridge.")

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
