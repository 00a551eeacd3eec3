//! The shared-memory ring as a specification: frames come out whole and in
//! order across wrap-around, full and empty are reported, a hostile peer's
//! garbage is an error, and two threads over one region agree on every byte.

use secure9p_transport::ring::{self, Consumer, NoNotify, Notify, Producer, RingError, layout};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

fn region(words: usize) -> Vec<AtomicU32> {
    (0..words).map(|_| AtomicU32::new(0)).collect()
}

/// A region with `data` data words, initialised.
fn ring_of(data: usize) -> Vec<AtomicU32> {
    let r = region(layout::CONTROL_WORDS + data);
    ring::init(&r).expect("init");
    r
}

fn word(r: &[AtomicU32], i: usize) -> &AtomicU32 {
    &r[i]
}

fn data_word(r: &[AtomicU32], i: usize) -> &AtomicU32 {
    &r[layout::CONTROL_WORDS + i]
}

/// A frame whose bytes depend on `seed`, of `len` bytes.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 31 + i * 7) as u8)
        .collect()
}

#[derive(Default)]
struct Count(AtomicUsize);

impl Notify for Count {
    fn notify(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Count {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn frames_round_trip_in_order() {
    let r = ring_of(256);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    let frames: Vec<Vec<u8>> = (0..10).map(|i| pattern(i, i as usize * 9)).collect();
    for f in &frames {
        tx.push(f).expect("push");
    }
    let mut buf = [0u8; 1024];
    for f in &frames {
        assert_eq!(rx.peek_len().expect("peek"), Some(f.len()));
        let n = rx.pop(&mut buf).expect("pop").expect("a frame");
        assert_eq!(&buf[..n], &f[..]);
    }
    assert_eq!(rx.pop(&mut buf).expect("pop"), None);
    assert_eq!(rx.peek_len().expect("peek"), None);
}

#[test]
fn empty_frame_is_a_frame() {
    let r = ring_of(8);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    tx.push(&[]).expect("push");
    assert_eq!(rx.pop(&mut []).expect("pop"), Some(0));
    assert_eq!(rx.pop(&mut []).expect("pop"), None);
}

#[test]
fn wrap_around_single_thread() {
    // 37 data words: records of every length straddle the end many times.
    let r = ring_of(37);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    let mut buf = [0u8; 256];
    let mut words_moved = 0;
    for i in 0..2000u32 {
        let f = pattern(i, (i as usize * 13) % (tx.max_frame_len() / 2 + 1));
        tx.push(&f).expect("push");
        if i % 2 == 1 {
            // Keep a frame in flight so head and tail rarely meet at 0.
            let n = rx.pop(&mut buf).expect("pop").expect("frame");
            assert_eq!(&buf[..n], &pattern(i - 1, n)[..], "frame {}", i - 1);
            let n = rx.pop(&mut buf).expect("pop").expect("frame");
            assert_eq!(&buf[..n], &f[..], "frame {i}");
        }
        words_moved += 1 + f.len().div_ceil(4);
    }
    assert!(words_moved > 37 * 100, "only {words_moved} words moved");
}

#[test]
fn full_then_space_again() {
    let r = ring_of(16);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    // Each 8-byte frame takes 3 words; 15 of 16 words are usable: 5 frames.
    for i in 0..5 {
        tx.push(&pattern(i, 8)).expect("fits");
    }
    assert_eq!(
        tx.push(&pattern(5, 8)),
        Err(RingError::Full { need: 3, free: 0 })
    );
    // A smaller frame does not fit either, and nothing was written.
    assert_eq!(tx.push(&[1]), Err(RingError::Full { need: 2, free: 0 }));
    let mut buf = [0u8; 8];
    assert_eq!(rx.pop(&mut buf).expect("pop"), Some(8));
    assert_eq!(buf, &pattern(0, 8)[..]);
    tx.push(&pattern(5, 8)).expect("space again");
    for i in 1..6 {
        assert_eq!(rx.pop(&mut buf).expect("pop"), Some(8));
        assert_eq!(buf, &pattern(i, 8)[..]);
    }
    assert_eq!(rx.pop(&mut buf).expect("pop"), None);
}

#[test]
fn frame_larger_than_the_ring_is_refused() {
    let r = ring_of(16);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    assert_eq!(tx.max_frame_len(), 56);
    assert_eq!(rx.max_frame_len(), 56);
    assert_eq!(
        tx.push(&[0; 57]),
        Err(RingError::FrameTooLarge { len: 57, max: 56 })
    );
    // The largest frame fits an empty ring exactly, even across the end.
    tx.push(&[1; 20]).expect("push");
    let mut buf = [0u8; 56];
    rx.pop(&mut buf).expect("pop");
    tx.push(&pattern(9, 56)).expect("largest frame");
    assert_eq!(rx.pop(&mut buf).expect("pop"), Some(56));
    assert_eq!(buf, &pattern(9, 56)[..]);
}

#[test]
fn short_buffer_leaves_the_frame_in_the_ring() {
    let r = ring_of(32);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    tx.push(&pattern(1, 30)).expect("push");
    let mut small = [0u8; 29];
    assert_eq!(
        rx.pop(&mut small),
        Err(RingError::BufferTooSmall { need: 30, have: 29 })
    );
    let mut buf = [0u8; 64];
    assert_eq!(rx.pop(&mut buf).expect("pop"), Some(30));
    assert_eq!(&buf[..30], &pattern(1, 30)[..]);
}

#[test]
fn region_sizes_are_checked() {
    let need = layout::CONTROL_WORDS + layout::MIN_DATA_WORDS;
    let r = region(need - 1);
    assert_eq!(
        ring::init(&r),
        Err(RingError::RegionTooSmall {
            words: need - 1,
            need
        })
    );
    assert_eq!(
        Producer::attach(&r, NoNotify).map(drop),
        Err(RingError::RegionTooSmall {
            words: need - 1,
            need
        })
    );
    assert_eq!(ring::init(&region(need)), Ok(8));
    assert!(ring::init(&region(layout::region_words(1000))).expect("init") >= 1000);
    assert_eq!(layout::region_words(0), need);
}

#[test]
fn attach_refuses_an_uninitialised_or_mismatched_region() {
    let r = region(layout::CONTROL_WORDS + 64);
    assert_eq!(
        Consumer::attach(&r, NoNotify).map(drop),
        Err(RingError::NotInitialised { found: 0 })
    );
    ring::init(&r).expect("init");
    // The peer mapped (or claims) a different size.
    word(&r, layout::CAPACITY).store(65, Ordering::SeqCst);
    assert_eq!(
        Producer::attach(&r, NoNotify).map(drop),
        Err(RingError::CapacityMismatch {
            declared: 65,
            actual: 64
        })
    );
    // A shorter mapping of the same ring is refused too.
    ring::init(&r).expect("init");
    let shorter = &r[..layout::CONTROL_WORDS + 32];
    assert_eq!(
        Consumer::attach(shorter, NoNotify).map(drop),
        Err(RingError::CapacityMismatch {
            declared: 64,
            actual: 32
        })
    );
}

#[test]
fn corrupt_indices_are_errors() {
    let r = ring_of(64);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    let mut buf = [0u8; 512];
    for bad in [64, 65, u32::MAX] {
        word(&r, layout::HEAD).store(bad, Ordering::SeqCst);
        assert_eq!(
            rx.pop(&mut buf),
            Err(RingError::CorruptIndex {
                index: "head",
                value: bad,
                capacity: 64
            })
        );
        word(&r, layout::TAIL).store(bad, Ordering::SeqCst);
        assert_eq!(
            tx.push(b"x"),
            Err(RingError::CorruptIndex {
                index: "tail",
                value: bad,
                capacity: 64
            })
        );
        assert!(Producer::attach(&r, NoNotify).is_err());
        assert!(Consumer::attach(&r, NoNotify).is_err());
    }
}

#[test]
fn corrupt_lengths_are_errors() {
    let r = ring_of(64);
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    let mut buf = [0u8; 1024];
    // A hostile producer publishes 3 words but a length word of 9 bytes
    // (needing 4), of the whole ring, and of 4 GiB.
    word(&r, layout::HEAD).store(3, Ordering::SeqCst);
    for len in [9, 8 * 4 + 1, 62 * 4, u32::MAX] {
        data_word(&r, 0).store(len, Ordering::SeqCst);
        assert_eq!(
            rx.pop(&mut buf),
            Err(RingError::CorruptLength { len, available: 8 })
        );
    }
    // Exactly what was published is fine.
    data_word(&r, 0).store(8, Ordering::SeqCst);
    assert_eq!(rx.pop(&mut buf), Ok(Some(8)));
}

/// A peer writing random words over the whole region, control block
/// included, between operations: every call returns, none panics, and
/// nothing is read outside the region (a panic or an index error would
/// abort the test).
#[test]
fn random_garbage_never_panics() {
    let r = ring_of(40);
    let mut tx = Producer::attach(&r, NoNotify).expect("producer");
    let mut rx = Consumer::attach(&r, NoNotify).expect("consumer");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut buf = [0u8; 256];
    let (mut errors, mut frames) = (0, 0);
    for _ in 0..20_000 {
        let x = next();
        let i = (x as usize >> 8) % r.len();
        // Mostly small values, so indices are sometimes in range.
        let v = match x % 4 {
            0 => (x >> 32) as u32,
            _ => (x >> 40) as u32 % 80,
        };
        r[i].store(v, Ordering::Relaxed);
        let len = (x >> 16) as usize % 200;
        match tx.push(&buf[..len.min(buf.len())]) {
            Ok(()) => {}
            Err(_) => errors += 1,
        }
        match rx.pop(&mut buf) {
            Ok(Some(_)) => frames += 1,
            Ok(None) => {}
            Err(_) => errors += 1,
        }
    }
    assert!(errors > 0 && frames > 0, "errors {errors}, frames {frames}");
}

#[test]
fn producer_notifies_when_the_ring_becomes_non_empty() {
    let r = ring_of(64);
    let (to_consumer, to_producer) = (Count::default(), Count::default());
    let mut tx = Producer::attach(&r, &to_consumer).expect("producer");
    let mut rx = Consumer::attach(&r, &to_producer).expect("consumer");
    let mut buf = [0u8; 64];
    tx.push(b"one").expect("push");
    tx.push(b"two").expect("push");
    assert_eq!(to_consumer.get(), 1, "only the first push found it empty");
    rx.pop(&mut buf).expect("pop");
    tx.push(b"three").expect("push");
    assert_eq!(to_consumer.get(), 1, "ring was not empty");
    rx.pop(&mut buf).expect("pop");
    rx.pop(&mut buf).expect("pop");
    tx.push(b"four").expect("push");
    assert_eq!(to_consumer.get(), 2);
    assert_eq!(to_producer.get(), 0, "producer never waited");
}

#[test]
fn consumer_notifies_a_producer_that_found_the_ring_full() {
    let r = ring_of(16);
    let (to_consumer, to_producer) = (Count::default(), Count::default());
    let mut tx = Producer::attach(&r, &to_consumer).expect("producer");
    let mut rx = Consumer::attach(&r, &to_producer).expect("consumer");
    let mut buf = [0u8; 64];
    while tx.push(&[7; 8]).is_ok() {}
    assert_eq!(word(&r, layout::SPACE_WANTED).load(Ordering::SeqCst), 1);
    rx.pop(&mut buf).expect("pop");
    assert_eq!(to_producer.get(), 1);
    assert_eq!(word(&r, layout::SPACE_WANTED).load(Ordering::SeqCst), 0);
    rx.pop(&mut buf).expect("pop");
    assert_eq!(to_producer.get(), 1, "nobody is waiting any more");
}

struct Unpark(Thread);

impl Notify for Unpark {
    fn notify(&self) {
        self.0.unpark();
    }
}

/// Frames of the stress test: sequence number, length, a checksum of the
/// body, then the body.
fn stress_frame(seq: u32, out: &mut Vec<u8>) {
    let len = (seq.wrapping_mul(2_654_435_761) >> 23) as usize; // 0..512
    let body = pattern(seq, len);
    let sum = body
        .iter()
        .fold(0u32, |s, &b| s.rotate_left(5) ^ u32::from(b));
    out.clear();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&body);
}

/// Waits for the peer's notification. A wait that runs into the timeout is a
/// lost wakeup: a correct ring always wakes a waiter that has work.
fn wait(lost: &AtomicUsize) {
    const PATIENCE: Duration = Duration::from_secs(2);
    let start = Instant::now();
    thread::park_timeout(PATIENCE);
    if start.elapsed() >= PATIENCE {
        lost.fetch_add(1, Ordering::SeqCst);
    }
}

/// One producer thread and one consumer thread over one region, sleeping
/// only on the ring's notifications: every frame arrives once, in order,
/// intact, and no wakeup is lost.
#[test]
fn two_threads_over_one_region() {
    const FRAMES: u32 = 60_000;
    let r = ring_of(1024);
    let lost = AtomicUsize::new(0);
    thread::scope(|s| {
        let producer_thread = thread::current();
        let (r, lost) = (&r, &lost);
        let consumer = s.spawn(move || {
            let mut rx = Consumer::attach(r, Unpark(producer_thread)).expect("consumer");
            let mut buf = vec![0u8; rx.max_frame_len()];
            let mut want = Vec::new();
            let mut seq = 0;
            while seq < FRAMES {
                let Some(n) = rx.pop(&mut buf).expect("pop") else {
                    wait(lost);
                    continue;
                };
                stress_frame(seq, &mut want);
                assert_eq!(&buf[..n], &want[..], "frame {seq}");
                seq += 1;
            }
            rx.pop(&mut buf).expect("pop")
        });
        let mut tx = Producer::attach(r, Unpark(consumer.thread().clone())).expect("producer");
        let mut frame = Vec::new();
        let mut words = 0usize;
        for seq in 0..FRAMES {
            stress_frame(seq, &mut frame);
            loop {
                match tx.push(&frame) {
                    Ok(()) => break,
                    Err(RingError::Full { .. }) => wait(lost),
                    Err(e) => panic!("push {seq}: {e}"),
                }
            }
            words += 1 + frame.len().div_ceil(4);
        }
        assert_eq!(consumer.join().expect("consumer"), None, "nothing extra");
        assert!(
            words > 1024 * 1000,
            "ring wrapped only {} times",
            words / 1024
        );
    });
    assert_eq!(lost.load(Ordering::SeqCst), 0, "lost wakeups");
}
