// Package testing_test guards the line between product and test support:
// the packages under internal/testing (the process tests' cluster queries,
// network namespaces, the partitionable network, PostgreSQL fixtures) may
// import the product, never the other way round, so the drplane binary
// ships none of them.
package testing_test

import (
	"os/exec"
	"strings"
	"testing"
)

const (
	module         = "github.com/drplane/drplane"
	testingSupport = module + "/internal/testing"
)

// TestImports_ProductDoesNotDependOnTestSupport lists every package of the
// module with its transitive non-test dependencies and fails for a product
// package (anything outside internal/testing and e2e) that reaches
// internal/testing, naming the binary's own dependency first.
func TestImports_ProductDoesNotDependOnTestSupport(t *testing.T) {
	for _, line := range goList(t, "-deps", "-f", "{{.ImportPath}}", module+"/cli/drplane") {
		if isTestSupport(line) {
			t.Errorf("the drplane binary depends on test support %s", line)
		}
	}
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{join .Deps \" \"}}", module+"/...") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !isProduct(fields[0]) {
			continue
		}
		for _, dep := range fields[1:] {
			if isTestSupport(dep) {
				t.Errorf("product package %s depends on test support %s", fields[0], dep)
			}
		}
	}
}

// goList runs `go list` with args and returns its output lines. `go test`
// puts its own GOROOT/bin first in PATH, so this is the go command that
// built the test.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list packages: %v", err)
	}
	out, err := exec.Command(goBin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// isTestSupport reports whether pkg is one of the test-support packages.
func isTestSupport(pkg string) bool {
	return pkg == testingSupport || strings.HasPrefix(pkg, testingSupport+"/")
}

// isProduct reports whether pkg belongs to the shipped code: the module's
// packages other than test support and the e2e tests.
func isProduct(pkg string) bool {
	if !strings.HasPrefix(pkg, module) || isTestSupport(pkg) {
		return false
	}
	return pkg != module+"/e2e" && !strings.HasPrefix(pkg, module+"/e2e/")
}
