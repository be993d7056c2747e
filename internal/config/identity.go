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
	if certName == c.NodeID {
		return nil
	}
	d := c.nodeIDAt
	d.Key = "node_id"
	d.Message = fmt.Sprintf("node_id %q is not the name of this server's certificate: %s is named %q, and other servers, agents and the audit trail know a server by its certificate; set node_id = %q, or make a certificate for %s with `drplane tls cert create --server --name %s`",
		c.NodeID, c.TLS.CertFile, certName, certName, c.NodeID, c.NodeID)
	return &Error{Diagnostics: []Diagnostic{d}}
}

// CheckCertificateName returns an *Error at host_id when certName, the
// name in this agent's certificate (tls.cert_file), is not host_id. It is
// called at start, once the certificate is loaded.
func (c *AgentConfig) CheckCertificateName(certName string) error {
	if certName == c.HostID {
		return nil
	}
	d := c.hostIDAt
	d.Key = "host_id"
	d.Message = fmt.Sprintf("host_id %q is not the name of this agent's certificate: %s is named %q, and the servers let an agent register only the host its certificate names; set host_id = %q, or make a certificate for %s with `drplane tls cert create --agent --name %s`",
		c.HostID, c.TLS.CertFile, certName, certName, c.HostID, c.HostID)
	return &Error{Diagnostics: []Diagnostic{d}}
}

// position is rng in the operator's file, as a Diagnostic without a
// message, for problems found after loading.
func (d *diagnostics) position(rng hcl.Range) Diagnostic {
	pos := d.lines.Original(rng.Start)
	return Diagnostic{File: d.file, Line: pos.Line, Column: pos.Column}
}
