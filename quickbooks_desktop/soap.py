"""The Web Connector's SOAP 1.1 protocol, by hand: read one call, write one answer, describe it in a WSDL.

Why no SOAP toolkit: the Web Connector speaks eight document/literal operations with string and int parameters in
the `http://developer.intuit.com/` namespace (Intuit, "QuickBooks Web Connector Programmer's Guide" 2.0, chapter 2).
spyne, the usual Python SOAP server, had its last release in 2022; zeep is a client only; django-quickbooks (2020)
is unmaintained. A dispatcher this small is easier to keep safe than a framework: incoming XML is parsed with
defusedxml (no DTD, no entity expansion, no external references), and answers are built with ElementTree, which
escapes every value (sendRequestXML's qbXML travels as escaped text inside the envelope, as QBWC expects).
"""

from xml.etree.ElementTree import Element, SubElement, register_namespace, tostring
from xml.sax.saxutils import quoteattr

from defusedxml import ElementTree as SafeET

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
QBWC_NS = "http://developer.intuit.com/"
register_namespace("soap", SOAP_ENV)

# operation -> (parameters in order, result type). The result of authenticate is an ArrayOfString.
OPERATIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "serverVersion": ((), "string"),
    "clientVersion": (("strVersion",), "string"),
    "authenticate": (("strUserName", "strPassword"), "ArrayOfString"),
    "sendRequestXML": (
        ("ticket", "strHCPResponse", "strCompanyFileName", "qbXMLCountry", "qbXMLMajorVers", "qbXMLMinorVers"),
        "string",
    ),
    "receiveResponseXML": (("ticket", "response", "hresult", "message"), "int"),
    "connectionError": (("ticket", "hresult", "message"), "string"),
    "getLastError": (("ticket",), "string"),
    "closeConnection": (("ticket",), "string"),
}
INT_PARAMETERS = frozenset({"qbXMLMajorVers", "qbXMLMinorVers"})


class SoapFault(Exception):
    def __init__(self, message: str, *, client: bool = True):
        super().__init__(message)
        self.message = message
        self.client = client


def parse_call(body: bytes) -> tuple[str, dict[str, str]]:
    """The operation called and its parameters (missing ones are empty strings)."""
    try:
        root = SafeET.fromstring(body)
    except Exception:
        raise SoapFault("The request is not well-formed XML (or uses DTDs or entities, which are refused).") from None
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    if root.tag != f"{{{SOAP_ENV}}}Envelope" or soap_body is None or len(soap_body) == 0:
        raise SoapFault("The request is not a SOAP 1.1 envelope with a body.")
    call = soap_body[0]
    namespace, _, operation = call.tag[1:].partition("}") if call.tag.startswith("{") else ("", "", call.tag)
    if namespace != QBWC_NS or operation not in OPERATIONS:
        raise SoapFault(f"Unknown operation {operation!r}: this endpoint serves the QuickBooks Web Connector.")
    parameters = {}
    for name in OPERATIONS[operation][0]:
        element = call.find(f"{{{QBWC_NS}}}{name}")
        parameters[name] = (element.text or "") if element is not None else ""
    return operation, parameters


def _envelope() -> tuple[Element, Element]:
    envelope = Element(f"{{{SOAP_ENV}}}Envelope")
    return envelope, SubElement(envelope, f"{{{SOAP_ENV}}}Body")


def _serialize(envelope: Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(envelope, encoding="utf-8", xml_declaration=False)


def build_result(operation: str, value) -> bytes:
    envelope, body = _envelope()
    response = SubElement(body, f"{{{QBWC_NS}}}{operation}Response")
    result = SubElement(response, f"{{{QBWC_NS}}}{operation}Result")
    if OPERATIONS[operation][1] == "ArrayOfString":
        for item in value:
            SubElement(result, f"{{{QBWC_NS}}}string").text = str(item)
    else:
        result.text = str(value)
    return _serialize(envelope)


def build_fault(message: str, *, client: bool = True) -> bytes:
    envelope, body = _envelope()
    fault = SubElement(body, f"{{{SOAP_ENV}}}Fault")
    SubElement(fault, "faultcode").text = "soap:Client" if client else "soap:Server"
    SubElement(fault, "faultstring").text = message
    return _serialize(envelope)


def build_call(operation: str, **parameters) -> bytes:
    """A call as the Web Connector sends it (used by the simulator)."""
    envelope, body = _envelope()
    call = SubElement(body, f"{{{QBWC_NS}}}{operation}")
    for name in OPERATIONS[operation][0]:
        if name in parameters:
            SubElement(call, f"{{{QBWC_NS}}}{name}").text = str(parameters[name])
    return _serialize(envelope)


def parse_result(operation: str, body: bytes):
    """The value of an answer (used by the simulator): a string, an int or a list of strings."""
    root = SafeET.fromstring(body)
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    fault = soap_body.find(f"{{{SOAP_ENV}}}Fault")
    if fault is not None:
        raise SoapFault(fault.findtext("faultstring") or "SOAP fault")
    result = soap_body.find(f"{{{QBWC_NS}}}{operation}Response/{{{QBWC_NS}}}{operation}Result")
    kind = OPERATIONS[operation][1]
    if kind == "ArrayOfString":
        return [element.text or "" for element in result.findall(f"{{{QBWC_NS}}}string")]
    text = result.text or "" if result is not None else ""
    return int(text) if kind == "int" else text


def wsdl(endpoint_url: str) -> str:
    """The service description, generated from OPERATIONS (document/literal, SOAP 1.1)."""
    types, messages, port_ops, binding_ops = [], [], [], []
    for operation, (parameters, result) in OPERATIONS.items():
        fields = "".join(
            f'<s:element minOccurs="0" maxOccurs="1" name="{p}" type="s:{"int" if p in INT_PARAMETERS else "string"}"/>'
            for p in parameters
        )
        result_type = "tns:ArrayOfString" if result == "ArrayOfString" else f"s:{result}"
        types.append(
            f'<s:element name="{operation}"><s:complexType><s:sequence>{fields}</s:sequence></s:complexType>'
            f'</s:element><s:element name="{operation}Response"><s:complexType><s:sequence>'
            f'<s:element minOccurs="{1 if result == "int" else 0}" maxOccurs="1" name="{operation}Result" '
            f'type="{result_type}"/></s:sequence></s:complexType></s:element>'
        )
        messages.append(
            f'<wsdl:message name="{operation}SoapIn"><wsdl:part name="parameters" element="tns:{operation}"/>'
            f'</wsdl:message><wsdl:message name="{operation}SoapOut"><wsdl:part name="parameters" '
            f'element="tns:{operation}Response"/></wsdl:message>'
        )
        port_ops.append(
            f'<wsdl:operation name="{operation}"><wsdl:input message="tns:{operation}SoapIn"/>'
            f'<wsdl:output message="tns:{operation}SoapOut"/></wsdl:operation>'
        )
        binding_ops.append(
            f'<wsdl:operation name="{operation}"><soap:operation soapAction="{QBWC_NS}{operation}" '
            f'style="document"/><wsdl:input><soap:body use="literal"/></wsdl:input><wsdl:output>'
            f'<soap:body use="literal"/></wsdl:output></wsdl:operation>'
        )
    array = (
        '<s:complexType name="ArrayOfString"><s:sequence><s:element minOccurs="0" maxOccurs="unbounded" '
        'name="string" nillable="true" type="s:string"/></s:sequence></s:complexType>'
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<wsdl:definitions xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
        f'xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:tns="{QBWC_NS}" targetNamespace="{QBWC_NS}" '
        'xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/">'
        f'<wsdl:types><s:schema elementFormDefault="qualified" targetNamespace="{QBWC_NS}">'
        f"{''.join(types)}{array}</s:schema></wsdl:types>{''.join(messages)}"
        f'<wsdl:portType name="QBWebConnectorSvcSoap">{"".join(port_ops)}</wsdl:portType>'
        '<wsdl:binding name="QBWebConnectorSvcSoap" type="tns:QBWebConnectorSvcSoap">'
        '<soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>'
        f"{''.join(binding_ops)}</wsdl:binding>"
        '<wsdl:service name="QBWebConnectorSvc"><wsdl:port name="QBWebConnectorSvcSoap" '
        f'binding="tns:QBWebConnectorSvcSoap"><soap:address location={quoteattr(endpoint_url)}/></wsdl:port>'
        "</wsdl:service></wsdl:definitions>"
    )
