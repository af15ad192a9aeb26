# Record: FFmpeg (or a raw publisher of ours) publishes, the module writes FLV files under
# record_path; the files are read back by our own FLV/AMF0 reader (every tag, the onMetaData and its
# keyframe index), probed by ffprobe and decoded to the end by FFmpeg. Control start/stop,
# on_record_done (t/lib/Test/Nginx/HttpRecorder.pm), refusals, names, and a full disk (tmpfs).
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::HttpRecorder;
use Digest::MD5 ();
use File::Find ();
use HTTP::Tiny;
use POSIX ();

# ---------------------------------------------------------------------------------------------
# Reading FLV files

# The whole of an FLV file: { size, flags, tags => [{type, ts, off, size, data, key, seq}],
# meta => {onMetaData properties} (of the first tag, if it is one), problems => [...] }.
sub flv_read {
    my $file = shift;
    my $d = Test::Nginx::Rtmp::slurp($file);
    my %r = (size => length $d, tags => [], problems => []);
    my $bad = sub { push @{ $r{problems} }, shift };
    unless (length($d) >= 13 && substr($d, 0, 3) eq 'FLV' && ord(substr($d, 3, 1)) == 1) {
        $bad->('no FLV header');
        return \%r;
    }
    $r{flags} = ord substr($d, 4, 1);
    my $at = unpack('N', substr($d, 5, 4));
    $bad->("data offset $at") unless $at == 9;
    $bad->('PreviousTagSize0 is not 0') unless unpack('N', substr($d, $at, 4)) == 0;
    $at += 4;
    while ($at < length $d) {
        if ($at + 11 > length $d) { $bad->("a cut tag header at $at"); last }
        my ($type, $s_hi, $s_lo, $ts_hi, $ts_lo, $ts_ext) = unpack('C C n C n C', substr($d, $at, 8));
        my $size = ($s_hi << 16) | $s_lo;
        if ($at + 11 + $size + 4 > length $d) { $bad->("a cut tag at $at (size $size)"); last }
        my $prev = unpack('N', substr($d, $at + 11 + $size, 4));
        $bad->("PreviousTagSize $prev after the tag at $at (size $size)") unless $prev == $size + 11;
        my $data = substr($d, $at + 11, $size);
        my %t = (type => $type & 0x1f, ts => ($ts_ext << 24) | ($ts_hi << 16) | $ts_lo, off => $at,
                 size => $size, data => $data);
        if ($t{type} == 9) {
            $t{key} = (ord($data) >> 4) == 1;
            $t{seq} = (ord($data) & 0x0f) == 7 && ord(substr($data, 1, 1)) == 0;
            $t{eos} = (ord($data) & 0x0f) == 7 && ord(substr($data, 1, 1)) == 2;
        } elsif ($t{type} == 8) {
            $t{seq} = (ord($data) >> 4) == 10 && ord(substr($data, 1, 1)) == 0;
        }
        push @{ $r{tags} }, \%t;
        $at += 11 + $size + 4;
    }
    my $first = $r{tags}[0];
    if ($first && $first->{type} == 18) {
        my $pos = 0;
        my ($name, $props) = eval { (amf0_value($first->{data}, \$pos), amf0_value($first->{data}, \$pos)) };
        if ($@) { $bad->("onMetaData: $@") }
        elsif (($name // '') ne 'onMetaData' || ref $props ne 'HASH') { $bad->('the first script tag is not onMetaData') }
        else { $r{meta} = $props }
    }
    return \%r;
}

sub cmd { Test::Nginx::Rtmp::run_cmd([@_], timeout => 60) }

# ffprobe: codec names (sorted, comma-joined) and the format duration.
sub probe_file {
    my $file = shift;
    my ($code, $out, $err) = cmd('ffprobe', '-v', 'error', '-show_entries',
                                 'stream=codec_name:format=duration', '-of', 'json', $file);
    my $j = eval { JSON::PP::decode_json($out) } || {};
    return { codecs => join(',', sort map { $_->{codec_name} // '?' } @{ $j->{streams} || [] }),
             duration => $j->{format}{duration} // 0, err => $err, code => $code };
}

# Decodes the whole file; returns FFmpeg's complaints (empty when it decoded cleanly).
sub decode_errors {
    my $file = shift;
    my ($code, $out, $err) = cmd('ffmpeg', '-nostdin', '-v', 'error', '-i', $file, '-f', 'null', '-');
    $err .= "(ffmpeg exit code $code)" if $code;
    return $err;
}

# Checks that $file is a recording that plays alone; returns its facts
# { duration (s, from the tags), video, audio (frames), keys, size, meta, tags }.
# %want: audio => 0/1, video => 0/1 (tracks expected), keyframes_only => 1, meta_todo => reason
# (the onMetaData checks are TODO tests with this reason).
sub check_flv {
    my ($file, $label, %want) = @_;
    $want{audio} //= 1;
    $want{video} //= 1;
    my $f = flv_read($file);
    my @tags = @{ $f->{tags} };
    my @av = grep { $_->{type} == 8 || $_->{type} == 9 } @tags;
    my @frames = grep { !$_->{seq} && !$_->{eos} } @av;
    my @video = grep { $_->{type} == 9 } @frames;
    my @audio = grep { $_->{type} == 8 } @frames;
    my %r = (size => $f->{size}, video => scalar @video, audio => scalar @audio, meta => $f->{meta},
             keys => scalar(grep { $_->{key} } @video), tags => \@tags,
             duration => @av ? $av[-1]{ts} / 1000 : 0);

    # Structure: every tag whole, the start of a file that plays alone.
    my @p = @{ $f->{problems} };
    push @p, 'the first tag is not onMetaData' unless $f->{meta};
    my $want_flags = ($want{audio} ? 4 : 0) | ($want{video} ? 1 : 0);
    push @p, sprintf('header flags 0x%02x, want 0x%02x', $f->{flags} // 0, $want_flags)
        unless ($f->{flags} // -1) == $want_flags;
    push @p, 'video tags in an audio-only recording' if !$want{video} && grep { $_->{type} == 9 } @av;
    push @p, 'audio tags in a video-only recording' if !$want{audio} && grep { $_->{type} == 8 } @av;
    push @p, 'no video frame' if $want{video} && !@video;
    push @p, 'no audio frame' if $want{audio} && !@audio;
    push @p, 'a video frame that is not a keyframe' if $want{keyframes_only} && grep { !$_->{key} } @video;
    for my $kind ([9, 'video'], [8, 'audio']) {
        my ($type, $name) = @$kind;
        my @k = grep { $_->{type} == $type } @av;
        next unless @k;
        push @p, "the first $name tag is not its sequence header" unless $k[0]{seq};
        my @fr = grep { !$_->{seq} } @k;
        push @p, "$name timestamps go back (" . join(' ', map { $fr[$_ - 1]{ts} . '>' . $fr[$_]{ts} }
                                                  grep { $fr[$_]{ts} < $fr[$_ - 1]{ts} } 1 .. $#fr) . ')'
            if grep { $fr[$_]{ts} < $fr[$_ - 1]{ts} } 1 .. $#fr;
    }
    push @p, 'the first video frame is not a keyframe' if @video && !$video[0]{key};
    push @p, "the first frame is at $frames[0]{ts} ms, not 0" if @frames && $frames[0]{ts} != 0;
    ok(!@p, "$label: a whole FLV file that starts at a keyframe with its headers") or diag(join "\n", @p);

    # onMetaData as rewritten at close: duration, filesize, keyframe index pointing at keyframes.
    my @m;
    my $m = $f->{meta} || {};
    push @m, 'no duration' unless defined $m->{duration};
    push @m, sprintf('duration %s, the last tag is at %.3f s', $m->{duration}, $r{duration})
        if defined $m->{duration} && abs($m->{duration} - $r{duration}) > 0.1;
    push @m, 'filesize ' . ($m->{filesize} // 'missing') . ", the file has $f->{size} bytes"
        unless defined $m->{filesize} && $m->{filesize} == $f->{size};
    if ($want{video}) {
        my $kf = ref $m->{keyframes} eq 'HASH' ? $m->{keyframes} : {};
        my ($times, $pos) = @$kf{qw(times filepositions)};
        if (ref $times ne 'ARRAY' || ref $pos ne 'ARRAY' || !@$pos || @$times != @$pos) {
            push @m, 'no keyframes {times, filepositions} of equal, non-zero length';
        } else {
            my %at = map { $_->{off} => $_ } @tags;
            for my $i (0 .. $#$pos) {
                my $t = $at{ $pos->[$i] };
                if (!$t || $t->{type} != 9 || !$t->{key} || $t->{seq}) {
                    push @m, "keyframes.filepositions[$i] = $pos->[$i] is not a video keyframe tag";
                } elsif (abs($t->{ts} / 1000 - $times->[$i]) > 0.002) {
                    push @m, "keyframes.times[$i] = $times->[$i], the tag is at $t->{ts} ms";
                }
            }
            push @m, "the index has " . @$pos . " of $r{keys} keyframes" if @$pos < $r{keys} && $r{keys} <= 1000;
        }
    }
    {
        my $todo = $want{meta_todo};
        Test::More->builder->todo_start($todo) if $todo && @m;
        ok(!@m, "$label: onMetaData holds duration, filesize and a keyframe index") or diag(join "\n", @m);
        Test::More->builder->todo_end if $todo && @m;
    }

    # Players: ffprobe sees the tracks, FFmpeg decodes every frame without a complaint.
    my $want_codecs = join ',', sort(($want{audio} ? 'aac' : ()), ($want{video} ? 'h264' : ()));
    my $probe = probe_file($file);
    my $errs = decode_errors($file);
    ok($probe->{codecs} eq $want_codecs && $errs eq '',
       "$label: ffprobe sees $want_codecs, FFmpeg decodes it all") or diag("codecs $probe->{codecs}\n$probe->{err}$errs");
    return \%r;
}

# ---------------------------------------------------------------------------------------------
# Files and servers

# The files under $dir (relative to the prefix), sorted.
sub files_in {
    my $dir = "$ENV{TEST_NGINX_PREFIX}/" . shift;
    opendir my $dh, $dir or return ();
    my @f = sort grep { !/^\.\.?$/ } readdir $dh;
    return @f;
}

# Every file under the prefix whose name ends in .flv, as paths relative to the prefix.
sub all_flv {
    my $root = $ENV{TEST_NGINX_PREFIX};
    my @f;
    File::Find::find({ no_chdir => 1, wanted => sub { push @f, substr($_, length($root) + 1) if /\.flv$/ && -f } }, $root);
    @f = sort @f;
    return @f;
}

# is(), as a TODO test with $reason when it fails (a known module bug).
sub todo_is {
    my ($got, $want, $name, $reason) = @_;
    my $known = !defined $got || $got ne $want;
    Test::More->builder->todo_start($reason) if $known;
    my $ok = is($got, $want, $name);
    Test::More->builder->todo_end if $known;
    return $ok;
}

sub md5_of { Digest::MD5->new->add(Test::Nginx::Rtmp::slurp(shift))->hexdigest }

# A file-rotation sort: cam.flv, cam-1.flv, cam-2.flv, … cam-10.flv.
sub by_rotation {
    my $n = sub { $_[0] =~ /-(\d+)\.flv$/ ? $1 : 0 };
    return sort { $n->($a) <=> $n->($b) } @_;
}

# Closed-file log lines of recorder $rec ("" = the application's own).
sub closed_lines { my $rec = shift; log_lines(qr/rtmp: record: recorder "\Q$rec\E" closed "/) }
sub opened_lines { my $rec = shift; log_lines(qr/rtmp: record: recorder "\Q$rec\E" opened "/) }

# Publishes the 10 s test media once with FFmpeg (-re) and waits for it to end.
sub publish_once {
    my ($url) = @_;
    my $pid = publish($url, timeout => 40);
    my $code = wait_publisher($pid, 40);
    is($code, 0, "FFmpeg published $url to the end") or diag(publisher_log($pid));
}

sub control {
    my $r = HTTP::Tiny->new(timeout => 5, keep_alive => 0)->get("http://127.0.0.1:$ENV{TEST_NGINX_HTTP_PORT}" . shift);
    return $r->{status} == 200 ? "200 $r->{content}" =~ s/\s+$//r : $r->{status};
}

# The audio/video tags of the test media (type, timestamp, payload), script data left out.
my @MEDIA_TAGS;
sub media_tags {
    @MEDIA_TAGS = grep { $_->[0] == 8 || $_->[0] == 9 } flv_tags(media()) unless @MEDIA_TAGS;
    return @MEDIA_TAGS;
}

# A raw publisher of $app/$name that sends the test media's first $secs seconds at once;
# returns (socket, stream id), or an empty list when the publish is refused.
sub raw_publish_media {
    my ($app, $name, $secs) = @_;
    my ($s, $msid) = rtmp_raw_publish($ENV{TEST_NGINX_RTMP_PORT}, $app, $name) or return;
    for my $t (media_tags()) {
        last if $t->[1] > $secs * 1000;
        send_bytes($s, rtmp_chunk($t->[0] == 8 ? 6 : 7, $t->[0], $msid, $t->[2], timestamp => $t->[1],
                                  chunk_size => 4096)) or return;
    }
    return ($s, $msid);
}

run_tests();

__DATA__

=== TEST 1: record all / audio / video / keyframes / audio keyframes: each file plays alone, with a real onMetaData
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        record all;
        record_path rec_all;
        recorder a { record audio; record_path rec_audio; }
        recorder v { record video; record_path rec_video; }
        recorder k { record keyframes; record_path rec_keyframes; }
        recorder ak { record audio keyframes; record_path rec_ak; }
    }
}
--- run
my $P = $TEST_NGINX_PREFIX;
ok(-d "$P/rec_$_", "record_path rec_$_ was created at start") for qw(all audio video keyframes ak);
my $t0 = Time::HiRes::time();
publish_once("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam");
my $took = Time::HiRes::time() - $t0;
ok(wait_log(qr/rtmp: record: recorder "[^"]*" closed "/, 5, 10), 'five files closed');
for my $d (qw(all audio video keyframes ak)) {
    is(join(' ', files_in("rec_$d")), 'cam.flv', "rec_$d holds cam.flv only");
}
is(join(' ', all_flv()), join(' ', map { "rec_$_/cam.flv" } sort qw(all audio video keyframes ak)), 'no other .flv file anywhere');
is(sprintf('%o', (stat "$P/rec_all/cam.flv")[2] & 07777), '644', 'files are 0644');
for my $rec ('', qw(a v k ak)) {
    is(scalar(opened_lines($rec)), 1, "recorder \"$rec\": one opened line");
    is(scalar(closed_lines($rec)), 1, "recorder \"$rec\": one closed line");
}
like((closed_lines(''))[0], qr{closed "\Q$P\E/rec_all/cam\.flv"}, 'the closed line names the file with its full path');

my $all = check_flv("$P/rec_all/cam.flv", 'record all');
cmp_ok($all->{duration}, '>=', 9.5, "record all: duration $all->{duration} s of the 10 s published");
cmp_ok($all->{duration}, '<=', $took + 0.5, 'record all: no longer than the publish took');
is($all->{video}, 250, 'record all: every video frame (250)');
cmp_ok($all->{audio}, '>=', 425, "record all: every audio frame ($all->{audio} of 432; the first may precede the first keyframe)");
is($all->{keys}, 5, 'record all: five keyframes (one every 2 s)');
my $probe = probe_file("$P/rec_all/cam.flv");
ok(abs($probe->{duration} - 10) < 0.5, "ffprobe's duration $probe->{duration} s is about 10");
is($all->{meta}{width}, 640, 'onMetaData keeps the publisher\'s width');
is($all->{meta}{height}, 360, 'and height');

my $au = check_flv("$P/rec_audio/cam.flv", 'record audio', video => 0);
cmp_ok($au->{audio}, '>=', 430, "record audio: every audio frame ($au->{audio}), from the very first");
cmp_ok($au->{duration}, '>=', 9.5, "record audio: duration $au->{duration} s");
my $v = check_flv("$P/rec_video/cam.flv", 'record video', audio => 0);
is($v->{video}, 250, 'record video: every video frame');
my $k = check_flv("$P/rec_keyframes/cam.flv", 'record keyframes', audio => 0, keyframes_only => 1);
is($k->{video}, 5, 'record keyframes: the five keyframes only');
my $ak = check_flv("$P/rec_ak/cam.flv", 'record audio keyframes', keyframes_only => 1);
is($ak->{video}, 5, 'record audio keyframes: five keyframes');
cmp_ok($ak->{audio}, '>=', 425, 'record audio keyframes: and the audio');



=== TEST 2: rotation by record_max_size, record_max_frames and record_interval: every piece plays alone, none overwritten
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        recorder size { record all; record_path rec_size; record_max_size 50K; }
        recorder frames { record all; record_path rec_frames; record_max_frames 150; }
        recorder interval { record all; record_path rec_interval; record_interval 3s; }
    }
}
--- run
my $P = $TEST_NGINX_PREFIX;
publish_once("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam");
wait_until(sub { !grep { closed_lines($_) < opened_lines($_) } qw(size frames interval) }, 10);
my %info;
for my $rec (qw(size frames interval)) {
    my @files = by_rotation(files_in("rec_$rec"));
    cmp_ok(scalar @files, '>=', 3, "$rec: " . scalar(@files) . ' files');
    is("@files", join(' ', 'cam.flv', map { "cam-$_.flv" } 1 .. $#files), "$rec: named cam.flv, cam-1.flv, cam-2.flv…");
    is(scalar(opened_lines($rec)), scalar @files, "$rec: as many files as opened lines (none overwritten)");
    is(scalar(closed_lines($rec)), scalar @files, "$rec: each closed once");
    # Files whose only video tag is the AVC end of sequence.
    my @empty = grep { !grep { ($_->{type} == 8 || $_->{type} == 9) && !$_->{seq} && !$_->{eos} } @{ flv_read("$P/rec_$rec/$_")->{tags} } } @files;
    is("@empty", '', "$rec: no file without a frame (an end of sequence starts none)");
    my %skip = map { $_ => 1 } @empty;
    $info{$rec} = [map { check_flv("$P/rec_${rec}/$_", "$rec $_") } grep { !$skip{$_} } @files];
}
# Size and frames: a file reaching the limit ends before the next keyframe, which starts the next
# file; so every file but the last is over the limit and has no keyframe after the point where it
# reached it, and no frame is lost.
my @size = @{ $info{size} };
for my $i (0 .. $#size - 1) {
    my $f = $size[$i];
    my @t = @{ $f->{tags} };
    my ($cross) = grep { $t[$_]{off} + 15 + $t[$_]{size} >= 51200 } 0 .. $#t;
    my @late = grep { $_->{type} == 9 && $_->{key} && !$_->{seq} && !$_->{eos} } @t[($cross // 0) + 1 .. $#t];
    ok(defined $cross && !@late && $f->{size} < 51200 + 40_000,
       "size file $i: $f->{size} bytes, from 51200 on up to the next keyframe only")
        or diag('keyframes after the limit at ' . join(' ', map { $_->{ts} } @late));
}
my @frames = @{ $info{frames} };
for my $i (0 .. $#frames - 1) {
    my $f = $frames[$i];
    my @fr = grep { ($_->{type} == 8 || $_->{type} == 9) && !$_->{seq} && !$_->{eos} } @{ $f->{tags} };
    my @late = grep { $_->{type} == 9 && $_->{key} } @fr[150 .. $#fr];
    ok(@fr >= 150 && !@late, "frames file $i: " . scalar(@fr) . ' frames, from the 150th on up to the next keyframe only');
}
for my $rec (qw(size frames)) {
    my ($v, $au) = (0, 0);
    for (@{ $info{$rec} }) { $v += $_->{video}; $au += $_->{audio} }
    is($v, 250, "$rec: every video frame in exactly one file");
    cmp_ok($au, '>=', 425, "$rec: every audio frame ($au)");
}
# Interval: a new file at the first keyframe 3 s after the last opened: 0-4 s, 4-8 s, 8-10 s,
# every frame once.
my @iv = @{ $info{interval} };
is(scalar @iv, 3, 'interval 3s over 10 s with a keyframe every 2 s: 3 files');
my ($v, $au, $d) = (0, 0, 0);
for (@iv) { $v += $_->{video}; $au += $_->{audio}; $d += $_->{duration} }
is($v, 250, 'interval: every video frame in exactly one file');
cmp_ok($au, '>=', 425, "interval: every audio frame ($au)");
cmp_ok($d, '>=', 9.4, "interval: the files add up to the published duration ($d s)");
ok($iv[0]{duration} >= 3.5 && $iv[0]{duration} < 4.1, "interval: the first file lasts about 4 s ($iv[0]{duration})");



=== TEST 3: naming: a new publish never overwrites (cam-1.flv), record_unique, strftime suffix, record_append
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    record all;
    application plain { live on; record_path rec_plain; }
    application uniq { live on; record_path rec_uniq; record_unique on; }
    application stamp { live on; record_path rec_stamp; record_suffix _%Y%m%d-%H%M%S.flv; }
    application append { live on; record_path rec_append; record_append on; }
}
--- run
my $P = $TEST_NGINX_PREFIX;
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my @apps = qw(plain uniq stamp append);
my (@t, %sum1);
for my $round (1, 2) {
    my $t0 = time;
    my @pids = map { publish("$base/$_/cam", timeout => 40) } @apps;
    for my $i (0 .. $#apps) {
        is(wait_publisher($pids[$i], 40), 0, "round $round: FFmpeg published $apps[$i]/cam") or diag(publisher_log($pids[$i]));
    }
    ok(wait_log(qr/rtmp: record: recorder "" closed "/, 4 * $round, 10), "round $round: four files closed");
    push @t, [$t0, time];
    %sum1 = map { my $f = "$P/rec_$_/cam.flv"; ($_ => -f $f ? md5_of($f) : '') } qw(plain append) if $round == 1;
    if ($round == 1) {
        ok(-s "$P/rec_append/cam.flv", 'append: the first publish made cam.flv');
    }
}
# plain: the second publish made cam-1.flv and left cam.flv as it was.
is(join(' ', files_in('rec_plain')), 'cam-1.flv cam.flv', 'plain: cam.flv, then cam-1.flv');
is(md5_of("$P/rec_plain/cam.flv"), $sum1{plain}, 'plain: cam.flv unchanged by the second publish');
check_flv("$P/rec_plain/$_", "plain $_") for qw(cam.flv cam-1.flv);
# unique: cam-<unix seconds of the open>.flv
my @u = files_in('rec_uniq');
is(scalar @u, 2, 'unique: two files') or diag("@u");
for my $i (0 .. 1) {
    my ($secs) = ($u[$i] // '') =~ /^cam-(\d+)\.flv$/;
    ok($secs && $secs >= $t[$i][0] - 1 && $secs <= $t[$i][1], "unique: $u[$i] has the open time of round " . ($i + 1));
}
check_flv("$P/rec_uniq/$u[0]", "unique $u[0]") if @u;
# stamp: the suffix through strftime at the open time (local time).
my @s = files_in('rec_stamp');
is(scalar @s, 2, 'strftime suffix: two files') or diag("@s");
for my $i (0 .. 1) {
    my %ok = map { ('cam' . POSIX::strftime('_%Y%m%d-%H%M%S', localtime $_) . '.flv' => 1) } $t[$i][0] - 1 .. $t[$i][1];
    ok($ok{ $s[$i] // '' }, "strftime suffix: $s[$i] is the open time of round " . ($i + 1));
}
check_flv("$P/rec_stamp/$s[0]", "strftime $s[0]") if @s;
# append: one file holding both publishes, timestamps going on.
is(join(' ', files_in('rec_append')), 'cam.flv', 'append: one file');
# The onMetaData the first publish reserved describes the whole file (both publishes' keyframes).
my $ap = check_flv("$P/rec_append/cam.flv", 'append cam.flv');
cmp_ok($ap->{duration}, '>=', 19, "append: both publishes, $ap->{duration} s");
is($ap->{video}, 500, 'append: every video frame of both');
is(scalar(grep { $_->{type} == 18 } @{ $ap->{tags} }), 1, 'append: one onMetaData only');



=== TEST 4: manual recorder through control record/start|stop; on_record_done fields
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        record all;
        record_path rec_auto;
        on_record_done http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/ok;
        recorder man { record all manual; record_path rec_man; }
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /control { rtmp_control all; }
}
--- run
my $P = $TEST_NGINX_PREFIX;
my $rec = Test::Nginx::HttpRecorder->new("$P/calls.jsonl", $TEST_NGINX_RTMP_PORT2);
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam?k=v", loop => 1, timeout => 40);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
ok(wait_log(qr/recorder "" opened/), 'the automatic recorder opened its file');
sleep 1;
is(scalar(files_in('rec_man')), 0, 'the manual recorder waits for control');
is(control('/control/record/start?app=live&name=other&rec=man'), 204, 'start for another stream: 204');
is(control('/control/record/start?app=other&name=cam&rec=man'), 204, 'start in another application: 204');
like(control('/control/record/start?app=live&name=cam&rec=man'), qr/^200 (1|\S+\.flv)$/, 'record/start: 200');
ok(wait_log(qr/recorder "man" opened "\Q$P\E\/rec_man\/cam\.flv"/, 1, 5), 'the manual recorder opened rec_man/cam.flv');
sleep 4;
like(control('/control/record/stop?app=live&name=cam&rec=man'), qr/^200 (1|\S+\.flv)$/, 'record/stop: 200');
ok(wait_log(qr/recorder "man" closed "\Q$P\E\/rec_man\/cam\.flv"/, 1, 5), 'the manual file was closed');
# The C module answers 204 when no recorder was started or stopped.
is(control('/control/record/start?app=live&name=cam&rec=nope'), 204, 'start of an unknown recorder: 204');
todo_is(control('/control/record/stop?app=live&name=cam&rec=man'), 204, 'stop of a stopped recorder: 204',
        'control record/* counts the publishers asked, not the recorders acted on');
my $man = check_flv("$P/rec_man/cam.flv", 'manual cam.flv');
ok($man->{duration} >= 1.5 && $man->{duration} <= 5.5, "manual: from the keyframe after start to stop ($man->{duration} s)");
like(control('/control/record/start?app=live&name=cam&rec=man'), qr/^200/, 'record/start again');
ok(wait_log(qr/recorder "man" opened "\Q$P\E\/rec_man\/cam-1\.flv"/, 1, 5), 'a second manual file, cam-1.flv');
sleep 3;
stop($pub);
ok(wait_log(qr/recorder "(man)?" closed/, 3, 10), 'the end of the publish closed both recorders\' files');
is(join(' ', files_in('rec_man')), 'cam-1.flv cam.flv', 'manual: two files');
check_flv("$P/rec_man/cam-1.flv", 'manual cam-1.flv');
check_flv("$P/rec_auto/cam.flv", 'automatic cam.flv');

my @done;
wait_until(sub { @done = $rec->calls('record_done'); @done >= 3 }, 10, 0.1);
sleep 1;
@done = $rec->calls('record_done');
is(scalar @done, 3, 'on_record_done once per closed file');
my %by = map { ("$_->{fields}{recorder}|$_->{fields}{path}" => $_) } grep { defined $_->{fields}{recorder} } @done;
is(join(' ', sort keys %by), join(' ', sort "|$P/rec_auto/cam.flv", "man|$P/rec_man/cam.flv", "man|$P/rec_man/cam-1.flv"),
   'record_done: recorder and path of each file') or diag(explain(\@done));
for my $c (@done) {
    my $f = $c->{fields};
    ok(-s ($f->{path} // '/nonexistent'), "record_done path $f->{path} exists");
    is($c->{method}, 'POST', 'record_done: POST');
    is(join(' ', map { "$_=" . ($f->{$_} // '') } qw(call name app addr k)),
       'call=record_done name=cam app=live addr=127.0.0.1 k=v', 'record_done: call, name, app, addr and the publish args');
    like($f->{clientid} // '', qr/^\d+$/, 'record_done: clientid');
}



=== TEST 5: names with ../ stay inside record_path; refused publishes (deny, on_publish, a busy name) create no file; record_notify
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    record all;
    application live { live on; record_path rec_live; }
    application denied { live on; record_path rec_denied; deny publish all; }
    application auth { live on; record_path rec_auth; on_publish http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/deny; }
    application notify { live on; record_path rec_notify; record_notify on; }
}
--- run
my $P = $TEST_NGINX_PREFIX;
my $rec = Test::Nginx::HttpRecorder->new("$P/calls.jsonl", $TEST_NGINX_RTMP_PORT2);
# Names that could name a path are refused by the server before any recorder sees them.
for my $name ('../x', '../../etc/evil', 'a/b', '..', '.', 'a\\b') {
    ok(!raw_publish_media('live', $name, 2.5), "the name \"$name\" is refused");
}
is(join(' ', all_flv()), '', 'no file for them, anywhere');
# Names that pass are escaped: everything but letters, digits and -._~ becomes %XX.
my %want = ('x y' => 'x%20y.flv', '...' => '%2E%2E%2E.flv', '%2F..' => '%252F...flv', "\xc3\xa7a" => '%C3%A7a.flv',
            'a:b*' => 'a%3Ab%2A.flv', '..x' => '..x.flv');
my $n = 0;
for my $name (sort keys %want) {
    my ($s) = raw_publish_media('live', $name, 2.5);
    ok($s, "a raw publisher publishes \"$name\" with 2.5 s of media") or next;
    $n++;
    ok(wait_log(qr/recorder "" opened/, $n, 5), "\"$name\": a file opened");
    close $s;
    ok(wait_log(qr/recorder "" closed/, $n, 5), "\"$name\": closed at disconnect");
}
is(join(' ', files_in('rec_live')), join(' ', sort values %want), 'every name escaped into one file in record_path');
is(join(' ', all_flv()), join(' ', map { "rec_live/$_" } sort values %want), 'no .flv file anywhere else');
check_flv("$P/rec_live/%2E%2E%2E.flv", '"..."');

# Refused publishes.
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
for my $app (qw(denied auth)) {
    my $pid = publish("$base/$app/cam", timeout => 20);
    isnt(wait_publisher($pid, 25), 0, "$app: FFmpeg's publish is refused");
    ok(!raw_publish_media($app, 'raw', 2.5), "$app: a raw publish is refused");
}
my $first = publish("$base/live/busy", loop => 1, timeout => 30);
ok(wait_published('busy'), 'live/busy publishes') or diag(publisher_log($first));
ok(wait_log(qr/opened "[^"]*busy\.flv"/, 1, 5), 'busy.flv opened');
my ($s2) = raw_publish_media('live', 'busy', 2.5);
ok(!$s2, 'a second publisher of the busy name is refused');
close $s2 if $s2;
my $second = publish("$base/live/busy", timeout => 20);
isnt(wait_publisher($second, 25), 0, 'so is a second FFmpeg');
stop($first);
ok(wait_log(qr/closed "[^"]*busy\.flv"/, 1, 5), 'busy.flv closed');
is(join(' ', files_in('rec_denied'), files_in('rec_auth')), '', 'no file for the refused publishes');
is(scalar(grep { /busy/ } files_in('rec_live')), 1, 'busy.flv only, nothing from the refused second publishers');
check_flv("$P/rec_live/busy.flv", 'busy.flv');
is(scalar(grep { /busy|cam|raw/ && !/rec_live\/busy\.flv/ } log_lines(qr/rtmp: record:/)), 0, 'no record line for a refused publish');

# record_notify: NetStream.Record.Start at the open, .Stop at closeStream.
my ($s, $msid) = raw_publish_media('notify', 'n', 2.5);
ok($s, 'notify: published');
ok(read_until($s, qr/NetStream\.Record\.Start/, 5), 'record_notify: NetStream.Record.Start');
send_bytes($s, rtmp_chunk(8, 20, $msid, amf_cmd('closeStream', 0, amf_null()))) if $s;
my $got = $s ? read_until($s, qr/NetStream\.Record\.Stop/, 5) : undef;
ok($got, 'record_notify: NetStream.Record.Stop at closeStream');
close $s if $s;
is(join(' ', files_in('rec_notify')), 'n.flv', 'notify: n.flv');
--- no_error_log
/\[error\].*rtmp: record:/



=== TEST 6: a full disk (tmpfs) closes the file once with one error; the publisher and a player go on
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        record all;
        record_path rec_full;
    }
}
--- run
my $P = $TEST_NGINX_PREFIX;
my $dir = "$P/rec_full";
my ($mcode, undef, $merr) = Test::Nginx::Rtmp::run_cmd(['mount', '-t', 'tmpfs', '-o', 'size=100k,mode=0777', 'tmpfs', $dir], timeout => 10);
SKIP: {
    skip("cannot mount a tmpfs on $dir: $merr", 14) if $mcode;
    my $ok = eval {
        my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam";
        my $pub = publish($url, loop => 1, timeout => 60);
        ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
        # 100k hold about 6 s of the 135 kbit/s media: the player covers before and after.
        my $player = in_background(sub { play_stats($url, 14) });
        my $errors = wait_log(qr/\[error\].*rtmp: record:/, 1, 20);
        ok($errors, 'the full disk is reported');
        sleep 4;
        my ($st) = result_of($player, 40);
        ok(kill(0, $pub) && !defined wait_publisher($pub, 0), 'the publisher is still publishing');
        my @sec = @{ $st->{seconds} || [] };
        cmp_ok(scalar @sec, '>=', 12, 'the player played on') or diag($st->{stderr});
        is(scalar(grep { $_ < 20 } @sec), 0, 'with no second short of frames: ' . join(' ', @sec));
        my ($v) = count_frames($url, 2);
        cmp_ok($v, '>=', 30, 'a new player plays after the failure');
        stop($pub);
        ok(wait_unpublished('cam'), 'the publish ended');
        my @err = log_lines(qr/rtmp: record:.*(?:No space|ENOSPC|write|failed|error)/i);
        @err = grep { !/recorder "[^"]*" (?:opened|closed) "/ } @err;
        is(scalar @err, 1, 'exactly one error line about the recording') or diag(join "\n", @err);
        like($err[0] // '', qr{\[error\].*"\Q$dir\E/cam\.flv".*(No space left|os error 28)}, 'it names the file and the reason');
        is(scalar(opened_lines('')), 1, 'one file opened');
        is(scalar(closed_lines('')), 1, 'closed once');
        is(join(' ', files_in('rec_full')), 'cam.flv', 'one file in the full directory');
        my $f = flv_read("$dir/cam.flv");
        is(join("\n", @{ $f->{problems} }), '', "the written file holds whole tags only ($f->{size} bytes)");
        is(decode_errors("$dir/cam.flv"), '', 'and decodes without an error');
        my @v = grep { $_->{type} == 9 && !$_->{seq} } @{ $f->{tags} };
        cmp_ok(scalar @v, '>=', 75, 'with ' . scalar(@v) . ' video frames (the 3 s or more that fitted)');
        1;
    };
    my $why = $@;
    Test::Nginx::Rtmp::run_cmd(['umount', '-l', $dir], timeout => 10);
    ok($ok, 'the full-disk checks ran to the end') or diag($why);
}



=== TEST 7: a record_path whose parents are missing is created with them (nginx -t of a second config)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; record all; record_path rec_top; }
}
--- run
my $P = $TEST_NGINX_PREFIX;
my $module = Test::Nginx::Rtmp::module_path();
open my $fh, '>', "$P/conf/nested.conf" or die $!;
print $fh "load_module $module;\nerror_log logs/nested.log info;\nevents {}\n"
    . "rtmp { server { listen 127.0.0.1:$TEST_NGINX_RTMP_PORT2; application a { record all; record_path deep/er/rec; } } }\n";
close $fh;
my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd([$Test::Nginx::Rtmp::NGINX, '-p', "$P/", '-c', 'conf/nested.conf', '-t'], timeout => 20);
ok(-d "$P/rec_top", 'a missing record_path is created');
is($code, 0, 'nginx -t accepts record_path deep/er/rec') or diag($out . $err);
is(-d "$P/deep/er/rec" ? 1 : 0, 1, 'and creates it with its parents');



=== TEST 8: exec_record_done gets $path $filename $basename $dirname $recorder $name of each closed file, from the recorder's own block
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        record all;
        record_path rec_exec;
        exec_record_done sh -c "echo app:$path:$filename:$basename:$dirname:$recorder:$name > $dirname/done-$basename.txt";
        recorder k {
            record keyframes;
            record_path rec_exec_k;
            exec_record_done sh -c "echo k:$recorder:$filename > $dirname/done-k.txt";
        }
    }
}
--- run
my $P = $TEST_NGINX_PREFIX;
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam", timeout => 60);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
ok(defined wait_publisher($pub, 30), 'the publish ends');
ok(wait_until(sub { -s "$P/rec_exec/done-cam.txt" && -s "$P/rec_exec_k/done-k.txt" }, 10, 0.1),
   'both exec_record_done commands ran');
is(Test::Nginx::Rtmp::slurp("$P/rec_exec/done-cam.txt"),
   "app:$P/rec_exec/cam.flv:cam.flv:cam:$P/rec_exec::cam\n", 'the application line got every variable');
is(Test::Nginx::Rtmp::slurp("$P/rec_exec_k/done-k.txt"), "k:k:cam.flv\n",
   'the recorder block ran its own line, with $recorder');
