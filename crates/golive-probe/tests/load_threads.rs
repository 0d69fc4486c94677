//! How many threads the load probe runs on: its default leaves a server on
//! the same small machine its cores at few connections, and `threads` sets
//! it, from 1 to the concurrency.

use golive_testkit::routes;

fn load(options: &str) -> Result<Box<dyn golive_probe::Probe>, golive_probe::SpecError> {
    let mut t: toml::Table = toml::from_str(options).expect("options");
    t.insert(
        "target".into(),
        toml::Value::String("http://127.0.0.1:9/".into()),
    );
    golive_probe::kind("load").expect("kind").probe(&t)
}

async fn observe(url: &str, options: &str) -> serde_json::Value {
    let mut t: toml::Table = toml::from_str(options).expect("options");
    t.insert("target".into(), toml::Value::String(url.into()));
    let obs = golive_probe::kind("load")
        .expect("kind")
        .probe(&t)
        .expect("spec")
        .observe()
        .await
        .expect("observed");
    assert_eq!(obs["error_rate"], 0.0, "{obs}");
    obs
}

fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// The load probe at few connections ran a thread per core: on two cores,
/// against a one-worker nginx beside it, the second thread took the
/// server's core and the load reached 0.7× of wrk's with one thread. Now one
/// thread drives up to 25 connections, and more threads join only as the
/// connections grow, never more than the cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_probe_at_few_connections_leaves_the_target_its_cores() {
    let s = golive_testkit::http(routes(&[("/", 200, "ok")])).await;
    let url = format!("http://127.0.0.1:{}/", s.addr.port());
    for (connections, threads) in [
        (1, 1),
        (10, 1),
        (24, 1),
        (50, 2.min(cores())),
        (100, 4.min(cores())),
    ] {
        let requests = 20 * connections;
        let obs = observe(
            &url,
            &format!("requests = {requests}\nconcurrency = {connections}"),
        )
        .await;
        assert_eq!(obs["threads"], threads, "{connections} connections: {obs}");
        assert_eq!(obs["concurrency"], connections);
        assert_eq!(obs["requests"], requests);
        assert_eq!(obs["connections"], connections, "one each: {obs}");
    }
}

/// `threads` is honoured, also beyond the cores (as wrk's `-t` is), and each
/// thread drives its own share of the connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threads_option_sets_the_threads_of_the_load() {
    let s = golive_testkit::http(routes(&[("/", 200, "ok")])).await;
    let url = format!("http://127.0.0.1:{}/", s.addr.port());
    for threads in [1, 2, 3, 10] {
        let obs = observe(
            &url,
            &format!("requests = 300\nconcurrency = 10\nthreads = {threads}"),
        )
        .await;
        assert_eq!(obs["threads"], threads, "{obs}");
        assert_eq!(obs["requests"], 300, "{obs}");
        assert_eq!(obs["statuses"]["200"], 300, "{obs}");
        assert_eq!(obs["connections"], 10, "{obs}");
    }
}

/// No threads, or more threads than connections (a thread without a
/// connection has nothing to send), is refused with the option named.
#[test]
fn threads_out_of_range_are_refused_naming_the_option() {
    for (options, shown) in [
        (
            "concurrency = 10\nthreads = 0",
            "0 threads for 10 connections",
        ),
        (
            "concurrency = 10\nthreads = 11",
            "11 threads for 10 connections",
        ),
        ("threads = -2", "-2 threads for 10 connections"),
    ] {
        let err = load(options).expect_err("refused").to_string();
        assert!(
            err.starts_with("`threads`: ") && err.contains(shown),
            "{options}: {err}"
        );
        assert!(
            err.contains("must be from 1 to the concurrency"),
            "{options}: {err}"
        );
    }
    assert!(load("concurrency = 10\nthreads = 10").is_ok());
    let err = load("threads = 'two'").expect_err("refused").to_string();
    assert!(err.contains("`threads`"), "{err}");
}
