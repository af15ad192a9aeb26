#!/usr/bin/python3
"""Plays a live HTTP-FLV or WebSocket-FLV stream in headless Chromium with mpegts.js and reports
playback and latency.

    t/browser/flv_play.py --url 'http://127.0.0.1:PORT/web/flv.html?src=ws://127.0.0.1:PORT/flv/live/test.flv' \
        --seconds 12 --screenshot target/flv-browser.png

The page (t/web/flv.html) records its state in window.flvState. As t/browser/hls_play.py (whose
process helpers this reuses), it waits for playback to start, samples video.currentTime for
--seconds, saves a screenshot and prints one JSON line on stdout:

    {"started", "startup_s", "advanced_s", "watched_s", "stalls", "width", "height",
     "fatal_errors", "ended", "media_info", "latency": {...}, ...}

latency, over the watched window (page samples every 0.25 s):
  buffer_*: end of the buffered range being played minus currentTime, what mpegts.js's latency
            chasing acts on (median, max, last);
  wall_*:   the live edge extrapolated at 1x from the earliest-arriving data (the largest
            buffered end minus page time seen) minus currentTime: it also counts data that
            arrived late or in bursts (median, max, last).
Exit status 0 when the browser ran (the caller judges), 2 when it could not be started.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hls_play import CHROMEDRIVER, CHROMIUM, Timeout, emit, kill_descendants  # noqa: E402


def start_browser(profile, window):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
              '--mute-audio', '--autoplay-policy=no-user-gesture-required',
              '--window-size=' + window, '--user-data-dir=' + profile,
              '--no-first-run', '--no-default-browser-check', '--disable-extensions',
              '--disable-background-networking', '--disable-component-update',
              '--disable-background-timer-throttling', '--disable-renderer-backgrounding'):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    return driver


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def latency(samples, since_ms):
    """Latency figures from the page's [ms, currentTime, bufferedEnd] samples."""
    fed = [s for s in samples if s[2] is not None]
    watched = [s for s in fed if s[0] >= since_ms]
    if not watched:
        return None
    edge = max(s[2] - s[0] / 1000.0 for s in fed)
    buf = [s[2] - s[1] for s in watched]
    wall = [edge + s[0] / 1000.0 - s[1] for s in watched]
    r3 = lambda x: round(x, 3)  # noqa: E731
    return {'samples': len(watched),
            'buffer_median_s': r3(median(buf)), 'buffer_max_s': r3(max(buf)), 'buffer_last_s': r3(buf[-1]),
            'wall_median_s': r3(median(wall)), 'wall_max_s': r3(max(wall)), 'wall_last_s': r3(wall[-1])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--url', required=True, help='the page, with ?src=STREAM_URL')
    ap.add_argument('--seconds', type=float, default=12, help='how long to watch playback')
    ap.add_argument('--start-timeout', type=float, default=20, help='max wait for playback to start')
    ap.add_argument('--screenshot', help='PNG file to write at the end')
    ap.add_argument('--window', default='1024,768', help='window size W,H')
    args = ap.parse_args()

    deadline_total = int(args.seconds + args.start_timeout + 55)

    def on_alarm(signum, frame):
        raise Timeout('flv_play.py: hard time limit of %d s reached' % deadline_total)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_alarm)
    signal.alarm(deadline_total)

    result = {'url': args.url, 'started': False, 'advanced_s': 0, 'stalls': 0, 'width': 0,
              'height': 0, 'fatal_errors': [], 'ended': None, 'latency': None}
    profile = tempfile.mkdtemp(prefix='flv-play-chromium-')
    driver = None
    try:
        try:
            driver = start_browser(profile, args.window)
            result['browser'] = driver.capabilities.get('browserVersion')
        except Exception as e:  # noqa: BLE001 -- anything here means no browser
            result['error'] = 'browser did not start: %s: %s' % (
                type(e).__name__, str(e).split('Stacktrace:')[0].strip()[:500])
            emit(result)
            return 2

        t0 = time.time()
        driver.get(args.url)

        def state():
            return driver.execute_script('return window.flvState || null') or {}

        def current_time():
            return driver.execute_script("return document.getElementById('video').currentTime")

        # Playback started: a 'playing' event and currentTime moving.
        first_ct = None
        while time.time() - t0 < args.start_timeout:
            st = state()
            if st.get('fatal') or st.get('ended'):
                break
            ct = current_time()
            if st.get('playing') and ct > 0:
                if first_ct is None:
                    first_ct = ct
                elif ct > first_ct:
                    result['started'] = True
                    break
            time.sleep(0.25)
        result['startup_s'] = round(time.time() - t0, 2)

        samples = []
        watch_from_ms = None
        if result['started']:
            watch_from_ms = driver.execute_script('return performance.now()')
            end = time.time() + args.seconds
            while time.time() < end:
                samples.append([round(time.time() - t0, 2), current_time()])
                time.sleep(0.5)
            samples.append([round(time.time() - t0, 2), current_time()])
            result['start_time'] = samples[0][1]
            result['end_time'] = samples[-1][1]
            result['advanced_s'] = round(samples[-1][1] - samples[0][1], 3)
            result['stalls'] = sum(1 for a, b in zip(samples, samples[1:]) if b[1] <= a[1])
            result['watched_s'] = round(samples[-1][0] - samples[0][0], 2)

        st = state()
        result['width'] = st.get('width') or 0
        result['height'] = st.get('height') or 0
        result['fatal_errors'] = st.get('fatal') or []
        result['ended'] = st.get('ended')
        result['media_info'] = st.get('mediaInfo')
        for k in ('mpegtsVersion', 'waiting', 'seeks', 'quality', 'playError', 'playingAt'):
            result[k] = st.get(k)
        stats = st.get('stats') or {}
        result['stats'] = {k: stats.get(k) for k in ('loaderType', 'speed', 'decodedFrames',
                                                     'droppedFrames', 'url')}
        if watch_from_ms is not None:
            result['latency'] = latency(st.get('samples') or [], watch_from_ms)
        result['samples'] = [s for i, s in enumerate(samples) if i % 4 == 0 or i == len(samples) - 1]

        if args.screenshot:
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            result['screenshot'] = args.screenshot if driver.save_screenshot(args.screenshot) else None
        emit(result)
        return 0
    except Exception as e:  # noqa: BLE001 -- report, the caller judges
        result['error'] = '%s: %s' % (type(e).__name__, str(e).strip()[:500])
        emit(result)
        return 0 if driver is not None else 2
    finally:
        signal.alarm(15)  # bound the shutdown too
        try:
            if driver is not None:
                driver.quit()
        except BaseException:  # noqa: BLE001
            pass
        signal.alarm(0)
        kill_descendants()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
