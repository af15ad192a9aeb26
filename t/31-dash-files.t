# DASH, the blocks that do not measure wall-clock time (they may run next to another suite):
# irregular GOPs (segments cut only at keyframes, the MPD and the boxes agree), the window (segments
# leave the MPD after dash_playlist_length, their files are deleted only later; an ended stream's
# files deleted, or kept with dash_cleanup off), dash_nested and a republish, audio-only and
# video-only streams, HEVC, the clock directives and configuration errors. The live MPD's timing
# and dash.js are in t/27-dash.t; the readers are t/lib/Test/Nginx/Dash.pm.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::Dash qw(parse_mpd sets_of iso_time xs_duration watch_mpd mpd_rules across_versions summary
                         max_of min_of files_in ffmpeg_frames);
use Time::HiRes ();

run_tests();

__DATA__

=== TEST 1: irregular GOPs: every segment starts at a keyframe, lasts at least dash_fragment, and the MPD and boxes agree
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_playlist_length 30s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
# Keyframes at 0.02, 1.22, 4.62, 5.42, 9.82 s... (target/media/irregular.flv, 12 s, looped).
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/irr", file => media('irregular.flv'), loop => 1, timeout => 60);
ok(wait_until(sub { -s "$TEST_NGINX_PREFIX/html/dash/irr.mpd" }, 15, 0.1), 'the MPD appears')
    or diag(publisher_log($pub));
# Until the segment after the loop seam is listed: 4.6, 5.2 and 2.2 s up to the seam at 12 s,
# then 4.6 s (4 video segments and their audio; at most 16 s).
my $w = watch_mpd('/dash/irr.mpd', 16, step => 0.5, until => sub {
    my $sets = sets_of($_[0]);
    return @{ $sets->{video}{segs} || [] } >= 4 && @{ $sets->{audio}{segs} || [] } >= 4;
});
my @v = @{ $w->{versions} };
my @rule_problems = map { my $i = $_; map { "version $i: $_" } mpd_rules($v[$i]{mpd}, tsbd => 30) } 0 .. $#v;
is_deeply(\@rule_problems, [], 'every version follows the live rules') or diag(explain(\@rule_problems));
my ($cross) = across_versions(\@v);
is_deeply($cross, [], 'across versions: nothing listed changes') or diag(explain($cross));
for my $kind (qw(seg_status boxes tfdt duration sync)) {
    is_deeply($w->{problems}{$kind} // [], [], "no $kind problem") or diag(explain($w->{problems}{$kind}));
}
my $sets = sets_of($v[-1]{mpd});
my @vd = map { $_->{d} / 90000 } @{ $sets->{video}{segs} || [] };
note('video segment durations: ' . join(' ', map { sprintf '%.3f', $_ } @vd));
cmp_ok(scalar @vd, '>=', 3, 'at least 3 video segments listed');
is_deeply([grep { $_ < 1.99 } @vd[0 .. $#vd]], [], 'no video segment shorter than dash_fragment (cut only at keyframes)');
ok((grep { $_ > 2.5 } @vd), 'some segments are longer than dash_fragment (the keyframes decide)');
my $max = xs_duration($v[-1]{mpd}{attr}{maxSegmentDuration});
ok(defined $max && $max + 0.001 >= max_of(@vd), "maxSegmentDuration ($max) covers every segment");
my @ad = map { $_->{d} / 44100 } @{ $sets->{audio}{segs} || [] };
my $vsum = 0; $vsum += $_ for @vd;
my $asum = 0; $asum += $_ for @ad;
# Audio segments follow the video cuts: their total covers the same span (within a segment's
# edge effects: audio starts/ends a frame apart).
cmp_ok(abs($vsum - $asum), '<', 0.5, sprintf('audio (%.2f s) and video (%.2f s) timelines cover the same span', $asum, $vsum));
stop($pub);

=== TEST 2: window: segments leave the MPD after dash_playlist_length and their files go only later; an ended stream's files are deleted (kept with dash_cleanup off)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application short {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_playlist_length 6s;
    }
    application keep {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/keep;
        dash_fragment 2s;
        dash_playlist_length 6s;
        dash_cleanup off;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 120
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $kdir = "$TEST_NGINX_PREFIX/html/keep";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/short/win", loop => 1, timeout => 60);
my $kpub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/keep/win", loop => 1, timeout => 60);
ok(wait_until(sub { -s "$dir/win.mpd" }, 15, 0.1), 'the MPD appears') or diag(publisher_log($pub));

# Every 0.25 s for 26 s: which segments the MPD lists, and which files exist.
my (%seg, @problems, $tsbd, $maxseg, $last_text);
my $end = Time::HiRes::time() + 26;
while (Time::HiRes::time() < $end) {
    my $text = Test::Nginx::Rtmp::slurp("$dir/win.mpd");
    my $m = parse_mpd($text) or next;
    my $now = Time::HiRes::time();
    my $pt = iso_time($m->{attr}{publishTime});
    $tsbd //= xs_duration($m->{attr}{timeShiftBufferDepth});
    $maxseg = xs_duration($m->{attr}{maxSegmentDuration});
    my %listed;
    for my $set (values %{ sets_of($m) }) {
        for my $s (@{ $set->{segs} }) {
            (my $f = $set->{tmpl}{media}) =~ s/\$Number\$/$s->{n}/;
            $listed{$f} = 1;
            $seg{$f}{listed_pt} //= $pt;
            push @problems, "$f listed but missing on disk" unless -e "$dir/$f";
        }
    }
    for my $f (keys %seg) {
        next if $listed{$f};
        $seg{$f}{left_pt} //= $pt;
        $seg{$f}{gone} //= $now unless -e "$dir/$f";
    }
    Time::HiRes::sleep(0.25);
}
is_deeply(\@problems, [], 'every listed segment exists') or diag(explain(\@problems));
is($tsbd, 6, 'timeShiftBufferDepth = dash_playlist_length');
my @left = grep { defined $seg{$_}{left_pt} } keys %seg;
cmp_ok(scalar @left, '>=', 6, scalar(@left) . ' segments left the MPD');
my @gone = grep { defined $seg{$_}{gone} } @left;
cmp_ok(scalar @gone, '>=', 2, scalar(@gone) . ' of them were deleted meanwhile');
# Deleted no earlier than timeShiftBufferDepth + the longest segment after they left the MPD
# (publishTime of the first version without them; 0.3 s for the poll and clock reading).
my @early = map { sprintf '%s deleted %.2f s after it left', $_, $seg{$_}{gone} - $seg{$_}{left_pt} }
    grep { $seg{$_}{gone} - $seg{$_}{left_pt} < $tsbd + $maxseg - 0.3 } @gone;
is_deeply(\@early, [], "no file deleted before timeShiftBufferDepth + maxSegmentDuration ($maxseg s) after it left the MPD");
note(join ', ', map { sprintf '%.1f', $seg{$_}{gone} - $seg{$_}{left_pt} } sort @gone);
# Files that left long enough ago are gone (deletions happen when later segments complete).
my @stale = grep { !defined $seg{$_}{gone} && $seg{$_}{left_pt} < $end - ($tsbd + $maxseg + 2 * $maxseg + 1) } @left;
is_deeply(\@stale, [], 'files that left the window long ago are deleted');
# Listing: the window (6 s) plus less than one segment.
my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/win.mpd"));
my $vlisted = 0; $vlisted += $_->{d} / 90000 for @{ sets_of($m)->{video}{segs} };
cmp_ok($vlisted, '>=', 6, "video listed: $vlisted s >= the window");
cmp_ok($vlisted, '<', 6 + $maxseg + 0.01, 'and less than the window plus a segment');

my @kept_before = files_in($kdir);
stop($pub);
stop($kpub);
ok(wait_unpublished('win', 2, 10), 'both streams ended');
my $km = parse_mpd(Test::Nginx::Rtmp::slurp("$kdir/win.mpd"));
ok(wait_until(sub { !files_in($dir) }, 25, 0.5), 'dash_cleanup on: every file of the ended stream is deleted')
    or diag(explain([files_in($dir)]));
my @kept = files_in($kdir);
my @want = ('win.mpd', 'win-init.m4a', 'win-init.m4v',
            map { my $set = $_; map { (my $f = $set->{tmpl}{media}) =~ s/\$Number\$/$_->{n}/; $f } @{ $set->{segs} } } values %{ sets_of($km) });
my %have = map { $_ => 1 } @kept;
is_deeply([grep { !$have{$_} } @want], [], 'dash_cleanup off: the MPD, init segments and listed segments stay')
    or diag(explain(\@kept));
cmp_ok(scalar(grep { /^win-\d+\.m4v$/ } @kept), '>=', 3, 'with their segments');
is_deeply([grep { /\.tmp$/ } @kept], [], 'and no temporary file');

=== TEST 3: dash_nested: <name>/index.mpd, init.m4v, <N>.m4v; a republish gets new segment numbers and a new availabilityStartTime
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_nested on;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash/nest";
my (@firsts, @numbers, @asts);
for my $round (1, 2) {
    my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/nest", loop => 1, timeout => 60);
    ok(wait_published('nest', $round), "publish $round");
    # Wait for a new MPD of this publish with 2 video segments.
    my $m = wait_until(sub {
        my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/index.mpd")) or return 0;
        return 0 if $round == 2 && $m->{attr}{availabilityStartTime} eq $asts[0];
        return @{ sets_of($m)->{video}{segs} || [] } >= 2 ? $m : 0;
    }, 15, 0.2);
    ok($m, "round $round: $dir/index.mpd lists 2 video segments") or do { diag(publisher_log($pub)); last };
    my $sets = sets_of($m);
    is($sets->{video}{tmpl}{initialization}, 'init.m4v', 'initialization relative to the MPD: init.m4v');
    is($sets->{video}{tmpl}{media}, '$Number$.m4v', 'media: $Number$.m4v');
    is($sets->{audio}{tmpl}{media}, '$Number$.m4a', 'audio media: $Number$.m4a');
    ok(-s "$dir/init.m4v" && -s "$dir/init.m4a", 'init.m4v and init.m4a in the stream directory');
    my $w = watch_mpd('/dash/nest/index.mpd', 2.5, step => 0.5);
    is_deeply($w->{problems}{seg_status} // [], [], 'every listed segment is served from /dash/nest/');
    is_deeply([ (summary({ map { $_ => $w->{problems}{$_} } grep { $_ ne 'seg_status' } keys %{ $w->{problems} } })) ], [],
              'and passes the box checks');
    my $mm = $w->{versions}[-1]{mpd};
    push @asts, $mm->{attr}{availabilityStartTime};
    push @numbers, [ map { $_->{n} } @{ sets_of($mm)->{video}{segs} } ];
    ok((grep { -e "$dir/$_.m4v" } @{ $numbers[-1] }) == @{ $numbers[-1] }, 'the segments are <N>.m4v files');
    stop($pub);
    ok(wait_unpublished('nest', $round, 10), "unpublish $round");
}
isnt($asts[1], $asts[0], 'the republish has its own availabilityStartTime');
my $max1 = max_of(@{ $numbers[0] || [] });
my $min2 = min_of(@{ $numbers[1] || [] });
ok(defined $max1 && defined $min2 && $min2 > $max1, "the republish's numbers ($min2...) follow the first publish's (...$max1): no name reused");
is_deeply([grep { /\.mpd$/ } files_in("$TEST_NGINX_PREFIX/html/dash")], [], 'no flat MPD next to the directory');

=== TEST 4: audio-only and video-only streams: an MPD with one AdaptationSet each, segments checked
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $ap = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/aonly", file => media('test-audio-only.flv'), loop => 1, timeout => 60);
my $vp = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/vonly", file => media('test-video-only.flv'), loop => 1, timeout => 60);
for my $c (['aonly', 'audio', 'm4a', 'mp4a.40.2'], ['vonly', 'video', 'm4v', 'avc1']) {
    my ($name, $type, $ext, $codec) = @$c;
    my $m = wait_until(sub {
        my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/$name.mpd")) or return 0;
        return @{ (values %{ sets_of($m) })[0]{segs} || [] } >= 2 ? $m : 0;
    }, 20, 0.2);
    ok($m, "$name: an MPD with 2 segments") or next;
    my $w = watch_mpd("/dash/$name.mpd", 3, step => 0.5);
    $m = $w->{versions}[-1]{mpd};
    is_deeply([sort keys %{ sets_of($m) }], [$type], "$name: one AdaptationSet, $type");
    is(scalar @{ $m->{periods}[0]{sets} }, 1, "$name: one AdaptationSet in the Period");
    is_deeply([mpd_rules($m)], [], "$name: live rules");
    like(sets_of($m)->{$type}{rep}{codecs} // '', qr/^\Q$codec\E/, "$name: codecs $codec");
    is_deeply([summary($w->{problems})], [], "$name: segments served and their boxes agree with the MPD");
    my $other = $ext eq 'm4a' ? 'm4v' : 'm4a';
    is_deeply([grep { /\.$other$/ } grep { /^\Q$name\E-/ } files_in($dir)], [], "$name: no .$other file");
    my ($fv, $fa, $ferr) = ffmpeg_frames("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/dash/$name.mpd", 3);
    cmp_ok($type eq 'video' ? $fv : $fa, '>=', $type eq 'video' ? 50 : 80, "$name: ffmpeg decodes $type frames over HTTP")
        or diag($ferr);
}
stop($ap);
stop($vp);

=== TEST 5: HEVC (Enhanced RTMP hvc1): codecs hvc1.*, hvc1 sample entry, ffmpeg decodes init + segment
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $pub = rtmp_publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/hevc", hevc_flv('enhanced'), loop => 1,
                       args => ['--fourcc', 'hvc1'], timeout => 60);
my $m = wait_until(sub {
    my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/hevc.mpd")) or return 0;
    return @{ sets_of($m)->{video}{segs} || [] } >= 2 ? $m : 0;
}, 20, 0.2);
ok($m, 'an MPD with 2 HEVC segments') or diag(publisher_log($pub));
my $w = watch_mpd('/dash/hevc.mpd', 3, step => 0.5);
$m = $w->{versions}[-1]{mpd};
my $v = sets_of($m)->{video};
like($v->{rep}{codecs} // '', qr/^hvc1\.\d+\.[0-9A-F]+\.[LH]\d+(\.[0-9A-F]{1,2})*$/, "codecs $v->{rep}{codecs}");
is_deeply([mpd_rules($m)], [], 'live rules');
is_deeply([summary($w->{problems})], [], 'segments served; boxes agree with the MPD; sync sample first');
my ($init) = values %{ $w->{inits} };
is($init->{entry}, 'hvc1', 'init: hvc1 sample entry');
my $seg = $v->{segs}[-1];
(my $f = $v->{tmpl}{media}) =~ s/\$Number\$/$seg->{n}/;
my $cat = Test::Nginx::Rtmp::tmp_dir() . '/hevc-cat.mp4';
open my $fh, '>', $cat or die;
print $fh Test::Nginx::Rtmp::slurp("$dir/hevc-init.m4v"), Test::Nginx::Rtmp::slurp("$dir/$f");
close $fh;
my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffprobe', '-v', 'error', '-show_entries',
    'stream=codec_name,codec_tag_string,width,height', '-of', 'csv=p=0', $cat], timeout => 20);
like($out, qr/^hevc,hvc1,\d+,\d+/m, "ffprobe: $out") or diag($err);
my ($fv, undef, $ferr) = ffmpeg_frames($cat, 30);
my $want = int($seg->{d} / 90000 * 25 + 0.5);
cmp_ok($fv, '>=', $want - 1, "ffmpeg decodes the segment's frames ($fv, ~$want expected)");
is($ferr, '', 'without an error');
stop($pub);

=== TEST 6: dash on without dash_path: nginx -t fails and names the application
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
    }
}
--- must_die: "dash" is on in application "live" but "dash_path" is not set

=== TEST 7: dash_clock_compensation http_iso without dash_clock_helper_uri fails nginx -t
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_clock_compensation http_iso;
    }
}
--- must_die: "dash_clock_compensation" needs "dash_clock_helper_uri"

=== TEST 8: http_iso with a helper URI: the MPD's UTCTiming points at it; a stream name starting with a dot is refused
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_clock_compensation http_iso;
        dash_clock_helper_uri http://127.0.0.1:$TEST_NGINX_HTTP_PORT/time;
    }
}
--- timeout: 60
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/clk", loop => 1, timeout => 30);
my $m = wait_until(sub { parse_mpd(Test::Nginx::Rtmp::slurp("$dir/clk.mpd")) }, 15, 0.2);
ok($m, 'an MPD') or diag(publisher_log($pub));
is($m->{utc}[0]{schemeIdUri}, 'urn:mpeg:dash:utc:http-iso:2014', 'first UTCTiming: http-iso');
is($m->{utc}[0]{value}, "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/time", 'its value is dash_clock_helper_uri');
ok($m->{utc_after_periods}, 'after the Periods');
is_deeply([mpd_rules($m)], [], 'live rules');
stop($pub);

my $dot = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/.hidden", loop => 1, timeout => 15);
ok(wait_log(qr/dash: publish refused: stream name starts with a dot/, 1, 10), 'the publish of ".hidden" is refused');
ok(defined wait_publisher($dot, 10), 'the publisher gave up');
is_deeply([grep { /hidden/ } files_in($dir)], [], 'nothing written for it');
--- error_log
dash: publish refused: stream name starts with a dot
