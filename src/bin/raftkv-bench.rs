//! raftkv-bench: a load generator for raftkv, modeled on etcd's benchmark
//! tool. Everything lives in `raftkv::bench`; this only hands over the exit
//! code.

fn main() {
    std::process::exit(raftkv::bench::main());
}
