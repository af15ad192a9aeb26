"""What the headless-Chromium drivers t/browser/hls_play.py and t/browser/flv_play.py share: their
options, starting Chromium, the run under a hard time limit that always prints one JSON line and
always shuts Chromium down, and sampling video.currentTime once playback has started.

Uses Debian's chromium, chromium-driver and python3-selenium.
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'


class Timeout(Exception):
    pass


def descendants(root):
    """Pids of all descendants of root, read from /proc."""
    children = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(')') + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_descendants():
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def emit(result):
    sys.stdout.write(json.dumps(result, sort_keys=True) + '\n')
    sys.stdout.flush()


def parse_args(doc, url_help, seconds):
    """The drivers' options; doc's first line describes the script, seconds is --seconds' default."""
    ap = argparse.ArgumentParser(description=doc.split('\n')[0])
    ap.add_argument('--url', required=True, help=url_help)
    ap.add_argument('--seconds', type=float, default=seconds, help='how long to watch playback')
    ap.add_argument('--start-timeout', type=float, default=20, help='max wait for playback to start')
    ap.add_argument('--screenshot', help='PNG file to write at the end')
    ap.add_argument('--window', default='1024,768', help='window size W,H')
    return ap.parse_args()


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


def run(name, args, result, play):
    """Calls play(driver) with a fresh headless Chromium, which fills result; then saves the
    screenshot (--screenshot) and prints result as one JSON line, whatever happened (an exception
    lands in result['error']). The whole run is bounded by --seconds + --start-timeout + 55 s, its
    shutdown by 15 s more; Chromium and every other descendant are always killed at the end.
    name is the script's, without .py. Returns the exit status: 0 when the browser ran (the caller
    judges the playback), 2 when it could not be started or driven."""
    deadline_total = int(args.seconds + args.start_timeout + 55)

    def on_alarm(signum, frame):
        raise Timeout('%s.py: hard time limit of %d s reached' % (name, deadline_total))

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_alarm)
    signal.alarm(deadline_total)

    profile = tempfile.mkdtemp(prefix=name.replace('_', '-') + '-chromium-')
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

        play(driver)

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


def wait_start(t0, timeout, result, probe):
    """Waits, until timeout s after t0, for playback to start: a 'playing' event and currentTime
    moving on from its first value above 0 (then result['started'] is True). probe() gives
    (playing, currentTime, failed) every 0.25 s; failed (e.g. a fatal error) ends the wait.
    Sets result['startup_s']."""
    first_ct = None
    while time.time() - t0 < timeout:
        playing, ct, failed = probe()
        if playing and ct > 0:
            if first_ct is None:
                first_ct = ct
            elif ct > first_ct:
                result['started'] = True
                break
        if failed:
            break
        time.sleep(0.25)
    result['startup_s'] = round(time.time() - t0, 2)


def current_time(driver):
    return driver.execute_script("return document.getElementById('video').currentTime")


def watch(driver, t0, seconds, result):
    """Samples video.currentTime every 0.5 s for seconds (and once more at the end) as
    [s since t0, currentTime]; sets result's start_time, end_time, advanced_s, stalls (samples in
    which currentTime did not move) and watched_s. Returns the samples."""
    samples = []
    end = time.time() + seconds
    while time.time() < end:
        samples.append([round(time.time() - t0, 2), current_time(driver)])
        time.sleep(0.5)
    samples.append([round(time.time() - t0, 2), current_time(driver)])
    result['start_time'] = samples[0][1]
    result['end_time'] = samples[-1][1]
    result['advanced_s'] = round(samples[-1][1] - samples[0][1], 3)
    result['stalls'] = sum(1 for a, b in zip(samples, samples[1:]) if b[1] <= a[1])
    result['watched_s'] = round(samples[-1][0] - samples[0][0], 2)
    return samples


def thin(samples):
    """Every 4th sample and the last, for the report."""
    return [s for i, s in enumerate(samples) if i % 4 == 0 or i == len(samples) - 1]
