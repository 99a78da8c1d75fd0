// Command seccompgen writes the seccomp filters the capture's unit tests
// evaluate, as libseccomp compiles them (seccomp_export_bpf):
//
//	docker-default.bpf    Docker's default profile (github.com/moby/profiles/seccomp
//	                      v0.3.0) for a container with Docker's default
//	                      capabilities on x86-64, converted as runc converts it
//	kill-userfaultfd.bpf  allow everything, SCMP_ACT_KILL_PROCESS on userfaultfd
//
// Run: go run . OUTDIR (needs libseccomp-dev and cgo).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Docker's default capability set (moby oci/caps/defaults.go).
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func action(a specs.LinuxSeccompAction, errno *uint, defaultErrno *uint) (libseccomp.ScmpAction, error) {
	ret := int16(1)
	if errno != nil {
		ret = int16(*errno)
	} else if defaultErrno != nil {
		ret = int16(*defaultErrno)
	}
	switch a {
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(ret), nil
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(ret), nil
	}
	return libseccomp.ActInvalid, fmt.Errorf("unknown action %q", a)
}

var operators = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

func docker() (*libseccomp.ScmpFilter, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: dockerCaps, Effective: dockerCaps, Permitted: dockerCaps,
	}}}
	profile, err := mobyseccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, err
	}
	def, err := action(profile.DefaultAction, nil, profile.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	filter, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, err
	}
	for _, a := range profile.Architectures {
		name := strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_"))
		if name == "x86_64" {
			name = "amd64"
		}
		arch, err := libseccomp.GetArchFromString(name)
		if err != nil {
			return nil, err
		}
		if err := filter.AddArch(arch); err != nil {
			return nil, err
		}
	}
	for _, call := range profile.Syscalls {
		act, err := action(call.Action, call.ErrnoRet, profile.DefaultErrnoRet)
		if err != nil {
			return nil, err
		}
		if act == def {
			continue
		}
		// As runc: one rule with every condition when each argument is
		// tested once, else one rule per condition.
		seen := map[uint]bool{}
		distinct := true
		var conds []libseccomp.ScmpCondition
		for _, arg := range call.Args {
			distinct = distinct && !seen[arg.Index]
			seen[arg.Index] = true
			cond, err := libseccomp.MakeCondition(arg.Index, operators[arg.Op], arg.Value, arg.ValueTwo)
			if err != nil {
				return nil, err
			}
			conds = append(conds, cond)
		}
		for _, name := range call.Names {
			nr, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // not a syscall of this architecture or libseccomp
			}
			switch {
			case len(conds) == 0:
				err = filter.AddRule(nr, act)
			case distinct:
				err = filter.AddRuleConditional(nr, act, conds)
			default:
				for _, cond := range conds {
					if err = filter.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{cond}); err != nil {
						break
					}
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return filter, nil
}

func killUserfaultfd() (*libseccomp.ScmpFilter, error) {
	filter, err := libseccomp.NewFilter(libseccomp.ActAllow)
	if err != nil {
		return nil, err
	}
	nr, err := libseccomp.GetSyscallFromName("userfaultfd")
	if err != nil {
		return nil, err
	}
	return filter, filter.AddRule(nr, libseccomp.ActKillProcess)
}

func export(dir, name string, make func() (*libseccomp.ScmpFilter, error)) error {
	filter, err := make()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer filter.Release()
	file, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer file.Close()
	return filter.ExportBPF(file)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: seccompgen OUTDIR")
		os.Exit(2)
	}
	for name, make := range map[string]func() (*libseccomp.ScmpFilter, error){
		"docker-default.bpf":   docker,
		"kill-userfaultfd.bpf": killUserfaultfd,
	} {
		if err := export(os.Args[1], name, make); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
