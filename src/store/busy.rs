//! SQLite's wait for its write lock: a busy handler that polls in sub-millisecond steps.
//!
//! Owns: how long and how finely a connection waits when another holds SQLite's write
//! lock. Must not: wait past [`MAX_WAIT`] (the caller's error becomes a 503 that Twilio
//! retries), or do anything but sleep on the connection's worker thread.
//!
//! Why: SQLite's own busy handler (what `busy_timeout` installs) sleeps 1, 2, 5, 10, 15,
//! 20, 25 … ms between tries. The actors' transactions hold the lock for about a
//! millisecond, so a webhook that met one waited for the sleep, not for the lock: a few
//! milliseconds added to some acks, the p99 of a paced burst. Polling every 50–200 µs
//! finds the lock free within a fraction of a millisecond of its release.

use std::os::raw::{c_int, c_void};
use std::time::Duration;

/// The longest a connection waits for the lock before its statement fails with BUSY.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(5);

/// Tries 0–19 sleep 50 µs, 20–59 200 µs (≈ 9 ms in all), then 1 ms each up to `MAX_WAIT`.
fn pause(attempt: u32) -> Option<Duration> {
    let (fine, medium) = (20, 40);
    let spent_us = if attempt < fine {
        u64::from(attempt) * 50
    } else if attempt < fine + medium {
        u64::from(fine) * 50 + u64::from(attempt - fine) * 200
    } else {
        u64::from(fine) * 50 + u64::from(medium) * 200 + u64::from(attempt - fine - medium) * 1000
    };
    if Duration::from_micros(spent_us) >= MAX_WAIT {
        return None;
    }
    Some(Duration::from_micros(if attempt < fine {
        50
    } else if attempt < fine + medium {
        200
    } else {
        1000
    }))
}

/// Called by SQLite on the connection's own (sqlx worker) thread while the lock is taken;
/// nonzero means "try again".
extern "C" fn on_busy(_: *mut c_void, attempt: c_int) -> c_int {
    match pause(attempt.max(0) as u32) {
        Some(d) => {
            std::thread::sleep(d);
            1
        }
        None => 0,
    }
}

/// Replaces the connection's busy handler (set by `busy_timeout`) with [`on_busy`].
pub(super) async fn install(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is this connection's open handle, held locked (no other thread uses it
    // meanwhile); `on_busy` is a plain function that touches no state through its argument.
    unsafe {
        libsqlite3_sys::sqlite3_busy_handler(db, Some(on_busy), std::ptr::null_mut());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_polls_finely_first_and_gives_up_at_the_limit() {
        assert_eq!(pause(0), Some(Duration::from_micros(50)));
        assert_eq!(pause(25), Some(Duration::from_micros(200)));
        assert_eq!(pause(100), Some(Duration::from_millis(1)));
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        while let Some(d) = pause(attempt) {
            waited += d;
            attempt += 1;
        }
        // It waits as long as `busy_timeout` did, within one step.
        assert!(
            waited >= MAX_WAIT && waited < MAX_WAIT + Duration::from_millis(1),
            "{waited:?}"
        );
    }
}
