//! raftkvctl: the command-line client of raftkv, an etcdctl look-alike.
//! Everything lives in `raftkv::ctl`; this only hands over the exit code.

fn main() {
    std::process::exit(raftkv::ctl::main());
}
