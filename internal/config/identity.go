package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// The certificate a server or agent presents is its identity to the
// others: the audit trail records its name, and the servers let an agent
// register only the host its certificate names. The configured id must be
// that name, and a mismatch is refused at start, at the id's file:line,
// rather than found later as refused calls.

// CheckCertificateName returns an *Error at node_id when certName, the
// name in this server's certificate (tls.cert_file), is not node_id. It is
// called at start, once the certificate is loaded.
func (c *ServerConfig) CheckCertificateName(certName string) error {
	return certNameMismatch(c.nodeIDAt, "node_id", c.NodeID, c.TLS.CertFile, certName, "server",
		"other servers, agents and the audit trail know a server by its certificate")
}

// CheckCertificateName returns an *Error at host_id when certName, the
// name in this agent's certificate (tls.cert_file), is not host_id. It is
// called at start, once the certificate is loaded.
func (c *AgentConfig) CheckCertificateName(certName string) error {
	return certNameMismatch(c.hostIDAt, "host_id", c.HostID, c.TLS.CertFile, certName, "agent",
		"the servers let an agent register only the host its certificate names")
}

// certNameMismatch is the *Error at key (its position at) when certName,
// the name in certFile, is not id; nil when they match. role is "server"
// or "agent"; why says what relies on the two being the same.
func certNameMismatch(at Diagnostic, key, id, certFile, certName, role, why string) error {
	if certName == id {
		return nil
	}
	at.Key = key
	at.Message = fmt.Sprintf("%s %q is not the name of this %s's certificate: %s is named %q, and %s; set %s = %q, or make a certificate for %s with `drplane tls cert create --%s --name %s`",
		key, id, role, certFile, certName, why, key, certName, id, role, id)
	return &Error{Diagnostics: []Diagnostic{at}}
}

// position is rng in the operator's file, as a Diagnostic without a
// message, for problems found after loading.
func (d *diagnostics) position(rng hcl.Range) Diagnostic {
	pos := d.lines.Original(rng.Start)
	return Diagnostic{File: d.file, Line: pos.Line, Column: pos.Column}
}
