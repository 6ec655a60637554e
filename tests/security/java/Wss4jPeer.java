import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.nio.file.Files;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

import javax.security.auth.callback.Callback;
import javax.security.auth.callback.CallbackHandler;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.TransformerFactory;
import javax.xml.transform.dom.DOMSource;
import javax.xml.transform.stream.StreamResult;

import org.apache.ws.security.WSConstants;
import org.apache.ws.security.WSDataRef;
import org.apache.ws.security.WSEncryptionPart;
import org.apache.ws.security.WSPasswordCallback;
import org.apache.ws.security.WSSConfig;
import org.apache.ws.security.WSSecurityEngine;
import org.apache.ws.security.WSSecurityEngineResult;
import org.apache.ws.security.components.crypto.Merlin;
import org.apache.ws.security.message.WSSecEncrypt;
import org.apache.ws.security.message.WSSecHeader;
import org.apache.ws.security.message.WSSecSignature;
import org.apache.ws.security.message.WSSecTimestamp;
import org.w3c.dom.Document;

/**
 * A WS-Security peer built on Apache WSS4J 1.6 (Debian libwss4j-java), for the
 * interop tests in test_sec_wss4j.py.
 *
 *   sign KEY.pem CERT.pem IN.xml OUT.xml
 *       sign a SOAP request: BinarySecurityToken, RSA-SHA256, SHA-256,
 *       exclusive c14n, over the Body and a wsu:Timestamp
 *   sign-encrypt KEY.pem CERT.pem SERVER-CERT.pem IN.xml OUT.xml
 *       sign as above, then encrypt the Body content to SERVER-CERT
 *       (WSSecEncrypt defaults of WSS4J 1.6: AES-128-CBC, RSA-OAEP key
 *       transport, EncryptedKey with a ReferenceList in the header; the
 *       recipient named by issuer and serial number)
 *   verify [--key KEY.pem CERT.pem] SERVER-CERT.pem IN.xml OUT.xml
 *       process a response's Security header (decrypting with KEY if given);
 *       exit 0 only if it carries a signature by SERVER-CERT covering the
 *       Body and the Timestamp (and, with --key, an encrypted Body);
 *       writes the processed (decrypted) document to OUT
 */
public class Wss4jPeer {
    static final String PASSWORD = "changeit";
    static final String RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    static final String SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256";
    static final String SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/";

    static X509Certificate cert(String path) throws Exception {
        return (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(Files.readAllBytes(new File(path).toPath())));
    }

    static PrivateKey key(String path) throws Exception {
        String pem = new String(Files.readAllBytes(new File(path).toPath()), "US-ASCII");
        if (!pem.contains("BEGIN PRIVATE KEY")) throw new IllegalArgumentException("need a PKCS#8 PEM key: " + path);
        String b64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
        return KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(Base64.getDecoder().decode(b64)));
    }

    static Merlin crypto(String keyPath, String certPath, String trustedPath) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        if (keyPath != null) {
            ks.setKeyEntry("me", key(keyPath), PASSWORD.toCharArray(), new Certificate[] {cert(certPath)});
        }
        if (trustedPath != null) {
            ks.setCertificateEntry("trusted", cert(trustedPath));
        }
        Merlin crypto = new Merlin();
        crypto.setKeyStore(ks);
        crypto.setTrustStore(ks);
        return crypto;
    }

    static Document read(String path) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return factory.newDocumentBuilder().parse(new File(path));
    }

    static void write(Document doc, String path) throws Exception {
        try (FileOutputStream out = new FileOutputStream(path)) {
            TransformerFactory.newInstance().newTransformer().transform(new DOMSource(doc), new StreamResult(out));
        }
    }

    static void sign(String keyPath, String certPath, String in, String out) throws Exception {
        write(sign(keyPath, certPath, read(in)), out);
    }

    static void signEncrypt(String keyPath, String certPath, String serverCert, String in, String out) throws Exception {
        Document doc = sign(keyPath, certPath, read(in));
        WSSecHeader header = new WSSecHeader();
        header.insertSecurityHeader(doc);       // the existing one
        WSSecEncrypt encrypt = new WSSecEncrypt();
        encrypt.setUserInfo("trusted");
        encrypt.setKeyIdentifierType(WSConstants.ISSUER_SERIAL);
        encrypt.setSymmetricEncAlgorithm(WSConstants.AES_128);
        encrypt.setKeyEnc(WSConstants.KEYTRANSPORT_RSAOEP);
        List<WSEncryptionPart> parts = new ArrayList<>();
        parts.add(new WSEncryptionPart("Body", SOAP11, "Content"));
        encrypt.setParts(parts);
        encrypt.build(doc, crypto(null, null, serverCert), header);
        write(doc, out);
    }

    static Document sign(String keyPath, String certPath, Document doc) throws Exception {
        WSSecHeader header = new WSSecHeader();
        header.setMustUnderstand(true);
        header.insertSecurityHeader(doc);
        WSSecTimestamp timestamp = new WSSecTimestamp();
        timestamp.setTimeToLive(300);
        timestamp.build(doc, header);
        WSSecSignature signature = new WSSecSignature();
        signature.setUserInfo("me", PASSWORD);
        signature.setKeyIdentifierType(WSConstants.BST_DIRECT_REFERENCE);
        signature.setSignatureAlgorithm(RSA_SHA256);
        signature.setDigestAlgo(SHA256);
        signature.setSigCanonicalization(WSConstants.C14N_EXCL_OMIT_COMMENTS);
        List<WSEncryptionPart> parts = new ArrayList<>();
        parts.add(new WSEncryptionPart("Body", SOAP11, ""));
        parts.add(new WSEncryptionPart("Timestamp", WSConstants.WSU_NS, ""));
        signature.setParts(parts);
        signature.build(doc, crypto(keyPath, certPath, null), header);
        return doc;
    }

    static int verify(String keyPath, String certPath, String serverCert, String in, String out) throws Exception {
        Document doc = read(in);
        Merlin crypto = crypto(keyPath, certPath, serverCert);
        CallbackHandler passwords = callbacks -> {
            for (Callback callback : callbacks) {
                ((WSPasswordCallback) callback).setPassword(PASSWORD);
            }
        };
        List<WSSecurityEngineResult> results =
                new WSSecurityEngine().processSecurityHeader(doc, null, passwords, crypto, crypto);
        if (results == null) {
            System.err.println("no Security header");
            return 1;
        }
        X509Certificate expected = cert(serverCert);
        boolean bodySigned = false, timestampSigned = false, signedByServer = false, bodyDecrypted = false;
        for (WSSecurityEngineResult result : results) {
            int action = (Integer) result.get(WSSecurityEngineResult.TAG_ACTION);
            @SuppressWarnings("unchecked")
            List<WSDataRef> refs = (List<WSDataRef>) result.get(WSSecurityEngineResult.TAG_DATA_REF_URIS);
            if (action == WSConstants.SIGN) {
                signedByServer = expected.equals(result.get(WSSecurityEngineResult.TAG_X509_CERTIFICATE));
                for (WSDataRef ref : refs) {
                    String name = ref.getName() == null ? "" : ref.getName().getLocalPart();
                    bodySigned |= name.equals("Body");
                    timestampSigned |= name.equals("Timestamp");
                }
            } else if (action == WSConstants.ENCR && refs != null) {
                for (WSDataRef ref : refs) {
                    String name = ref.getName() == null ? "" : ref.getName().getLocalPart();
                    bodyDecrypted |= name.equals("Body") && ref.isContent();
                }
            }
            System.err.println("result: action=" + action + " refs=" + (refs == null ? 0 : refs.size()));
        }
        write(doc, out);
        System.err.println("signedByServer=" + signedByServer + " bodySigned=" + bodySigned
                + " timestampSigned=" + timestampSigned + " bodyDecrypted=" + bodyDecrypted);
        boolean ok = signedByServer && bodySigned && timestampSigned && (keyPath == null || bodyDecrypted);
        return ok ? 0 : 1;
    }

    public static void main(String[] args) throws Exception {
        WSSConfig.init();
        if (args.length == 5 && args[0].equals("sign") ) {
            sign(args[1], args[2], args[3], args[4]);
        } else if (args.length == 6 && args[0].equals("sign-encrypt")) {
            signEncrypt(args[1], args[2], args[3], args[4], args[5]);
        } else if (args.length == 4 && args[0].equals("verify")) {
            System.exit(verify(null, null, args[1], args[2], args[3]));
        } else if (args.length == 7 && args[0].equals("verify") && args[1].equals("--key")) {
            System.exit(verify(args[2], args[3], args[4], args[5], args[6]));
        } else {
            System.err.println("usage: sign KEY CERT IN OUT | sign-encrypt KEY CERT SERVER-CERT IN OUT | verify [--key KEY CERT] SERVER-CERT IN OUT");
            System.exit(2);
        }
    }
}
