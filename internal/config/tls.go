package config

// TLSConfig names the PEM files of a node's certificate material. Relative
// paths in a file are resolved against the file's directory.
type TLSConfig struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// rawTLS is the tls block as gohcl decodes it.
type rawTLS struct {
	CAFile   string `hcl:"ca_file"`
	CertFile string `hcl:"cert_file"`
	KeyFile  string `hcl:"key_file"`
}

// Validate reports every TLS file that is unset, missing or unreadable.
func (t TLSConfig) Validate() error {
	var p problems
	t.validate(&p)
	return p.err()
}

func (t TLSConfig) validate(p *problems) {
	files := []struct{ key, path string }{
		{"tls.ca_file", t.CAFile}, {"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile},
	}
	for _, f := range files {
		if f.path == "" {
			p.add(f.key, "%s is empty; expected the path of a PEM file", f.key)
			continue
		}
		if err := checkFile(f.path); err != nil {
			p.add(f.key, "%s: %v", f.key, err)
		}
	}
}

// tls fills t from the file's tls block, which every server and agent
// needs, resolving relative paths and checking that the files exist.
func (v *serverValidator) tls(raw *rawTLS, t *TLSConfig) {
	if raw == nil {
		v.d.record(fileStart(v.body), "tls", "missing tls block; expected tls { ca_file = \"ca.pem\"  cert_file = \"cert.pem\"  key_file = \"key.pem\" } (make them with `drplane tls`)")
		return
	}
	t.CAFile = resolvePath(v.file, raw.CAFile)
	t.CertFile = resolvePath(v.file, raw.CertFile)
	t.KeyFile = resolvePath(v.file, raw.KeyFile)
	var p problems
	t.validate(&p)
	v.d.place(v.body, p)
}
