"""A small contract that uses every facet the reader supports, written to a
temporary wsdl/ + xsd/ pair (the same layout as the shipped contract)."""
import pytest

NS = "urn:dmwsi:test:facets"

FACET_XSD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{NS}" targetNamespace="{NS}"
           elementFormDefault="qualified" version="0.1">
  <xs:annotation><xs:documentation>Facets under test.</xs:documentation></xs:annotation>
  <xs:simpleType name="Code">
    <xs:annotation><xs:documentation>Exactly three characters.</xs:documentation></xs:annotation>
    <xs:restriction base="xs:string"><xs:length value="3"/></xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="Name">
    <xs:restriction base="xs:string"><xs:minLength value="1"/><xs:maxLength value="8"/></xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="Serial">
    <xs:restriction base="xs:string"><xs:pattern value="[A-Z]{{2}}[0-9]{{4}}"/></xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="Count">
    <xs:restriction base="xs:int"><xs:minInclusive value="1"/><xs:maxInclusive value="100"/></xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="Offset">
    <xs:restriction base="xs:long"><xs:minExclusive value="-1"/><xs:maxExclusive value="10"/></xs:restriction>
  </xs:simpleType>
  <xs:simpleType name="Color">
    <xs:restriction base="xs:string"><xs:enumeration value="red"/><xs:enumeration value="green"/></xs:restriction>
  </xs:simpleType>
  <xs:complexType name="Put">
    <xs:annotation><xs:documentation>A request with one field per facet.</xs:documentation></xs:annotation>
    <xs:sequence>
      <xs:element name="code" type="tns:Code"/>
      <xs:element name="name" type="tns:Name" minOccurs="0"/>
      <xs:element name="serial" type="tns:Serial" minOccurs="0"/>
      <xs:element name="count" type="tns:Count" minOccurs="0"/>
      <xs:element name="offset" type="tns:Offset" minOccurs="0"/>
      <xs:element name="colors" type="tns:Color" minOccurs="0" maxOccurs="3"/>
      <xs:element name="note" type="xs:string" minOccurs="0" nillable="true" default="none">
        <xs:annotation><xs:documentation>Free text.</xs:documentation></xs:annotation>
      </xs:element>
    </xs:sequence>
  </xs:complexType>
  <xs:complexType name="PutResponse">
    <xs:sequence><xs:element name="accepted" type="xs:int"/></xs:sequence>
  </xs:complexType>
  <xs:element name="Put" type="tns:Put"/>
  <xs:element name="PutResponse" type="tns:PutResponse"/>
</xs:schema>
"""

FACET_WSDL = f"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="Facets" targetNamespace="{NS}" xmlns:tns="{NS}"
                  xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
                  xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <wsdl:documentation>A contract using every supported facet.</wsdl:documentation>
  <wsdl:types>
    <xs:schema targetNamespace="{NS}" elementFormDefault="qualified">
      <xs:include schemaLocation="../xsd/facets.xsd"/>
    </xs:schema>
  </wsdl:types>
  <wsdl:message name="Put"><wsdl:part name="Put" element="tns:Put"/></wsdl:message>
  <wsdl:message name="PutResponse"><wsdl:part name="PutResponse" element="tns:PutResponse"/></wsdl:message>
  <wsdl:portType name="Facets">
    <wsdl:operation name="Put">
      <wsdl:documentation>Stores nothing; answers how many fields it got.</wsdl:documentation>
      <wsdl:input message="tns:Put"/>
      <wsdl:output message="tns:PutResponse"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="Facets" type="tns:Facets">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="Put">
      <soap:operation soapAction="Put" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="FacetsService">
    <wsdl:port name="Facets" binding="tns:Facets"><soap:address location="http://localhost/soap"/></wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def write_contract(base, wsdl=FACET_WSDL, xsd=FACET_XSD, name="facets"):
    """wsdl/<name>.wsdl and xsd/facets.xsd under ``base`` -> the WSDL path."""
    (base / "wsdl").mkdir(exist_ok=True)
    (base / "xsd").mkdir(exist_ok=True)
    (base / "xsd" / "facets.xsd").write_text(xsd)
    path = base / "wsdl" / f"{name}.wsdl"
    path.write_text(wsdl)
    return path


@pytest.fixture
def facet_wsdl(tmp_path):
    return write_contract(tmp_path)
