"""Spyne model classes generated from the contract (dmwsi.contract): the
SOAP edge's view of the types; nothing here types a field twice.

Every facet the reader supports is carried over (string lengths and pattern,
integer bounds, enumerations), and so are nillable, default and the
occurrence bounds, so spyne's own picture of the interface says what the
contract says (tests/contract compares the two). Requests are validated
against the authored XSD itself (dmwsi.contract.schema), not against these.
"""
from spyne import ComplexModel
from spyne.model.binary import ByteArray
from spyne.model.enum import Enum
from spyne.model.primitive import Boolean, DateTime, Int, Long, Unicode

from dmwsi.contract import XS, ContractError

BUILTINS = {
    "string": Unicode,
    "int": Int,
    "long": Long,
    "boolean": Boolean,
    "dateTime": DateTime,
    "base64Binary": ByteArray,
}

# XSD facet -> spyne constraint (xs:length is both bounds).
FACETS = {
    "minLength": ("min_len",), "maxLength": ("max_len",), "length": ("min_len", "max_len"), "pattern": ("pattern",),
    "minInclusive": ("ge",), "maxInclusive": ("le",), "minExclusive": ("gt",), "maxExclusive": ("lt",),
}

# An element default (reader.DEFAULT_BASES) as the value spyne hands over when the element is absent.
DEFAULTS = {
    "string": str,
    "int": int,
    "long": int,
    "boolean": lambda text: {"true": True, "1": True, "false": False, "0": False}[text],
}


class ModelFactory:
    """Spyne model classes for a contract's types, built once and shared."""

    def __init__(self, contract):
        self.contract = contract
        self._models = {}

    def model(self, qname):
        if qname in self._models:
            return self._models[qname]
        ns, name = qname
        if ns == XS:
            if name not in BUILTINS:
                raise ContractError(f"unsupported built-in type xs:{name}")
            model = BUILTINS[name]
        elif qname in self.contract.simple_types:
            model = self._simple(self.contract.simple_types[qname])
        elif qname in self.contract.complex_types:
            model = ComplexModel.produce(namespace=ns, type_name=name, members={})
            self._models[qname] = model  # registered before members: types may refer to themselves
            members = [(f.name, self.field_model(f)) for f in self.contract.complex_types[qname]]
            model._type_info.update(members)
        else:
            raise ContractError(f"type {{{ns}}}{name} is not defined in the contract")
        self._models[qname] = model
        return model

    def _simple(self, simple):
        ns, name = simple.name
        if simple.enumerations:
            # spyne's Enum (unlike Unicode(values=...)) stays one named simpleType when customized.
            model = Enum(*simple.enumerations, type_name=name)
        else:
            constraints = {}
            for facet, value in simple.facets.items():
                for key in FACETS[facet]:
                    constraints[key] = value
            model = BUILTINS[simple.base[1]].customize(type_name=name, **constraints)
        model.__namespace__ = ns
        return model

    def field_model(self, f):
        options = dict(min_occurs=f.min_occurs, max_occurs=f.max_occurs, nillable=f.nillable)
        if f.default is not None:
            options["default"] = self._default(f)
        model = self.model(f.type).customize(**options)
        if f.type in self.contract.simple_types:
            # spyne gives a customized restriction a type of its own, named after the field
            # ("Put_codeType"); the contract's field is of the named type, so keep its name.
            model.__type_name__, model.__namespace__ = f.type[1], f.type[0]
        return model

    def _default(self, f):
        # The reader allows defaults only on DEFAULTS' bases; the XSD build (dmwsi.contract.schema) checks the value.
        base = self.contract.simple_types[f.type].base if f.type in self.contract.simple_types else f.type
        return DEFAULTS[base[1]](f.default.strip())

    def members(self, element_qname):
        """(name, spyne type) for each field of a wrapper element."""
        return [(f.name, self.field_model(f)) for f in self.contract.fields_of(element_qname)]
