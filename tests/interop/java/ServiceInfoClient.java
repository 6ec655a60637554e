/*
 * Interop check for dmwsi: a JAX-WS client whose stubs wsimport generated from
 * the server's own WSDL (package org.dmwsi.client, wrapper style off, see
 * bindings.xml). Calls GetServiceInfo, then an operation that is not built yet
 * to see how the fault reaches a Java caller.
 *
 *   java -cp STUBS:JAXWS_JARS ServiceInfoClient http://127.0.0.1:8080/soap
 *
 * Prints one "key=value" line per fact; tests/interop/test_interop_java.py
 * checks them.
 */
import java.net.URL;
import java.util.List;
import java.util.Map;
import javax.xml.namespace.QName;
import javax.xml.soap.Detail;
import javax.xml.soap.SOAPFault;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.soap.SOAPFaultException;
import org.dmwsi.client.DMWSI;
import org.dmwsi.client.DMWSIService;
import org.dmwsi.client.DeviceRef;
import org.dmwsi.client.GetDeviceData;
import org.dmwsi.client.GetServiceInfo;
import org.dmwsi.client.GetServiceInfoResponse;
import org.dmwsi.client.ManagementObject;
import org.dmwsi.client.ServiceInfo;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

public class ServiceInfoClient {
    static final String NS = "http://dmwsi.org/ns/dmwsi/1.0";

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: ServiceInfoClient SOAP_URL");
            System.exit(2);
        }
        String endpoint = args[0];
        DMWSIService service = new DMWSIService(new URL(endpoint + "?wsdl"),
                                                new QName(NS, "DMWSIService"));
        DMWSI port = service.getDMWSI();
        ((BindingProvider) port).getRequestContext()
                .put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, endpoint);

        GetServiceInfoResponse response = port.getServiceInfo(new GetServiceInfo());
        ServiceInfo info = response.getInfo();
        System.out.println("interfaceVersions=" + String.join(",", info.getInterfaceVersions()));
        System.out.println("callbackVersions=" + String.join(",", info.getCallbackVersions()));
        List<String> operations = info.getOperations();
        System.out.println("operationCount=" + operations.size());
        System.out.println("operations=" + String.join(",", operations));
        StringBuilder roots = new StringBuilder();
        for (ManagementObject mo : info.getManagementObjects()) {
            roots.append(roots.length() == 0 ? "" : ",").append(mo.getRootUri());
        }
        System.out.println("managementObjectRoots=" + roots);
        byte[] cert = info.getServerCertificate();
        System.out.println("serverCertificateBytes=" + (cert == null ? 0 : cert.length));
        System.out.println("serverTimeYear=" + (info.getServerTime() == null ? "" : info.getServerTime().getYear()));

        // An operation of the contract that this release does not implement.
        GetDeviceData request = new GetDeviceData();
        DeviceRef device = new DeviceRef();
        device.setDeviceId("x");
        request.setDevice(device);
        request.getUris().add("./DevInfo");
        try {
            port.getDeviceData(request);
            System.out.println("getDeviceData=answered");
        } catch (SOAPFaultException e) {
            SOAPFault fault = e.getFault();
            System.out.println("fault.faultcode=" + fault.getFaultCodeAsQName().getLocalPart());
            System.out.println("fault.code=" + detailText(fault.getDetail(), "code"));
        }
    }

    /** Text of the first {NS}name element inside the fault detail ("" if none). */
    static String detailText(Detail detail, String name) {
        if (detail == null) {
            return "";
        }
        NodeList found = detail.getElementsByTagNameNS(NS, name);
        return found.getLength() == 0 ? "" : found.item(0).getTextContent();
    }
}
