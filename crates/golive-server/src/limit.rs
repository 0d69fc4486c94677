//! Per-client rate limits: a token bucket per client address for requests,
//! and a stricter one for failed logins and bad tokens, so that guessing
//! tokens gets a 429 long before it could get anywhere. Memory stays
//! bounded: full buckets are dropped when the table grows past a limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// A rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained, per second; 0 turns the limit off.
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Take one token at `now`; or the seconds until one is there.
    fn take(&mut self, r: Rate, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * r.per_second).min(r.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / r.per_second).ceil().max(1.0) as u64)
        }
    }

    fn full(&self, r: Rate, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * r.per_second >= r.burst
    }
}

/// The buckets of every client, for one rate.
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

const MAX_CLIENTS: usize = 10_000;

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// One request of `client`: allowed, or the seconds to wait.
    pub fn take(&self, client: IpAddr) -> Result<(), u64> {
        if self.rate.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_CLIENTS && !b.contains_key(&client) {
            let r = self.rate;
            b.retain(|_, v| !v.full(r, now));
        }
        b.entry(client)
            .or_insert(Bucket {
                tokens: self.rate.burst,
                at: now,
            })
            .take(self.rate, now)
    }

    /// Whether `client` has a token left, without taking it.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        if self.rate.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match b.get(&client) {
            None => Ok(()),
            Some(bk) => {
                let mut copy = *bk;
                copy.take(self.rate, now)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_wait_saying_how_long() {
        let l = Limiter::new(Rate {
            per_second: 0.5,
            burst: 3.0,
        });
        let c: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.take(c).is_ok());
        }
        assert_eq!(l.take(c), Err(2));
        // another client has its own bucket
        assert!(l.take("127.0.0.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let l = Limiter::new(Rate {
            per_second: 0.0,
            burst: 0.0,
        });
        for _ in 0..1000 {
            assert!(l.take("::1".parse().unwrap()).is_ok());
        }
    }
}
