package Test::Nginx::Rtmp;
# Test harness for the nginx RTMP module, in the block format of Test::Nginx::Socket.
#
#   use Test::Nginx::Rtmp;
#   run_tests();
#   __DATA__
#   === TEST 1: name
#   --- main_config        (top level, after load_module)
#   --- config             (inside rtmp { })
#   --- http_config        (inside http { }; the http block exists only when this section does)
#   --- workers: 2         (worker_processes, default 1)
#   --- log_level: debug   (error_log level, default info or $TEST_NGINX_LOG_LEVEL)
#   --- no_load_module     (leave out the load_module line)
#   --- must_die: REGEX    (nginx -t must fail; its output must match REGEX when given)
#   --- must_die_line: N   (the error names nginx.conf:LINE, LINE being line N of --- config;
#                           "main_config:N" / "http_config:N" for the other sections; empty: any line)
#   --- run                (perl code, run in package main while nginx runs)
#   --- timeout: N         (the run code is stopped after N seconds, default 180)
#   --- reloads            (the run code reloads nginx: the workers are then checked by count,
#                           not pid; crashes still show in the log check)
#   --- kills_worker       (the run code kills a worker with SIGKILL: checked by count, and
#                           "exited on signal 9" is expected in the log; other signals still fail)
#   --- log_todo: REASON   (a known bug: a failing no_error_log check, the automatic ones included,
#                           is a TODO test with this reason)
#   --- error_log          (each line must appear in the log: literal text, or /regex/)
#   --- no_error_log       (each line must not appear; [alert], [emerg], [crit] and crashed workers
#                           are always checked)
#
# $TEST_NGINX_RTMP_PORT, $TEST_NGINX_RTMP_PORT2, $TEST_NGINX_HTTP_PORT, $TEST_NGINX_PREFIX and
# $TEST_NGINX_ROOT (the repository) are
# replaced in the config sections, set in %ENV and declared as variables for the run code.
# Environment: TEST_NGINX_MODULE (path of the .so), TEST_NGINX_BINARY (default /usr/sbin/nginx),
# TEST_NGINX_LOG_LEVEL, TEST_NGINX_NO_CLEAN=1 (keep the server roots).
#
# Every sub below is written `sub name () {`: Spiffy's source filter then neither adds
# `my $self = shift` nor keeps the empty prototype.
use Test::Base -Base;

use Cwd ();
use File::Basename ();
use File::Path ();
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Socket qw(SOL_SOCKET SO_REUSEADDR);
use Storable ();
use Time::HiRes ();

our @EXPORT = qw(
    run_tests repo_root module_path
    media publish wait_publisher stop publisher_log
    rtmp_cli hevc_flv rtmp_publish flv_tags
    ffprobe_play count_frames rtmpdump_play gst_play
    in_background result_of
    rtmp_connect_raw rtmp_handshake send_bytes read_bytes read_until is_closed
    rtmp_chunk amf_num amf_str amf_bool amf_null amf_obj amf0_value
    wait_until explain note
    aux_nginx aux_start aux_stop aux_log
);

# Test::Base re-exports most of Test::More, but not these two.
sub explain () { return Test::More::explain(@_) }
sub note () { return Test::More::note(@_) }

our $ROOT = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../../../..');
our $NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
our $PREFIX;          # server root of the running block
our %BG;              # pid => description of background children of the running block
our %PUBLISHER_LOG;   # pid => stderr file of a publisher
our @AUX;             # other nginx instances of the running block (aux_nginx)
my $SEQ = 0;

$SIG{PIPE} = 'IGNORE';

sub repo_root () { $ROOT }

sub module_path () {
    $ENV{TEST_NGINX_MODULE} || "$ROOT/target/release/libngx_rtmp_rs.so";
}

# ---------------------------------------------------------------------------------------------
# Running commands with a hard time limit

# Runs @$cmd under `timeout`, returns ($exit_code, $stdout, $stderr). Exit 124 = timed out.
sub run_cmd () {
    my ($cmd, %opt) = @_;
    my $limit = $opt{timeout} || 30;
    my $out = File::Temp->new(DIR => tmp_dir());
    my $err = File::Temp->new(DIR => tmp_dir());
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out->filename;
        open STDERR, '>', $err->filename;
        { exec 'timeout', '-k', '3', $limit, @$cmd }
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $code = exit_code($?);
    return ($code, slurp($out->filename), slurp($err->filename));
}

sub exit_code () {
    my $st = shift;
    return $st & 127 ? 128 + ($st & 127) : $st >> 8;
}

sub slurp () {
    my $f = shift;
    open my $fh, '<', $f or return '';
    binmode $fh;
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub tmp_dir () {
    my $d = $PREFIX ? "$PREFIX/tmp" : "$ROOT/target/t";
    File::Path::make_path($d);
    return $d;
}

# Waits until $cond->() is true, for at most $secs seconds. Returns the last value of $cond->().
sub wait_until () {
    my ($cond, $secs, $step) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 5);
    while (1) {
        my $v = $cond->();
        return $v if $v || Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($step || 0.05);
    }
}

# ---------------------------------------------------------------------------------------------
# Media clients

# A test media file made once by scripts/media (default test.flv).
sub media () {
    my $f = "$ROOT/target/media/" . ($_[0] // 'test.flv');
    unless (-s $f) {
        system("$ROOT/scripts/media") == 0 && -s $f
            or die "test media $f is missing and scripts/media failed\n";
    }
    return $f;
}

# Our client CLI, built by scripts/test with the workspace.
sub rtmp_cli () { "$ROOT/target/release/rtmp" }

# The HEVC test stream as FLV, 'enhanced' (FourCC hvc1) or 'legacy' (codec id 12), made once.
sub hevc_flv () {
    my $form = shift;
    my $raw = "$ROOT/target/media/test.hevc";
    unless (-s $raw) {
        system("$ROOT/scripts/media") == 0 && -s $raw
            or die "test media $raw is missing and scripts/media failed\n";
    }
    my $out = "$ROOT/target/media/test-hevc-$form.flv";
    return $out if -s $out && -M $out <= -M $raw;
    my @legacy = $form eq 'legacy' ? ('--legacy') : ();
    system(rtmp_cli(), 'mux-hevc', $raw, "$out.tmp", '--fps', '25', @legacy) == 0
        or die "rtmp mux-hevc failed\n";
    rename "$out.tmp", $out or die "rename $out: $!";
    return $out;
}

# Starts our client publishing $file (looped with loop => 1) in the background; returns its pid.
# Extra client options (e.g. --fourcc hvc1) go in args => [...].
sub rtmp_publish () {
    my ($url, $file, %opt) = @_;
    my @cmd = (rtmp_cli(), @{ $opt{args} || [] }, 'publish', $url, '--file', $file);
    push @cmd, '--loop' if $opt{loop};
    return spawn_publisher("rtmp publisher $url", $opt{timeout}, @cmd);
}

# Runs a publisher command in the background under `timeout` (default 60 s), its stderr kept for
# publisher_log(); returns its pid.
sub spawn_publisher () {
    my ($what, $limit, @cmd) = @_;
    $limit ||= 60;
    my $log = tmp_dir() . '/publish-' . (++$SEQ) . '.log';
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        POSIX::setpgid(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $log;
        { exec 'timeout', '-k', '3', $limit, @cmd }
        POSIX::_exit(127);
    }
    $BG{$pid} = $what;
    $PUBLISHER_LOG{$pid} = $log;
    return $pid;
}

# The tags of an FLV file: a list of [type, timestamp, payload].
sub flv_tags () {
    my $data = slurp(shift);
    my @tags;
    return () unless length($data) >= 13 && substr($data, 0, 3) eq 'FLV';
    my $at = unpack('N', substr($data, 5, 4)) + 4;
    while ($at + 11 <= length $data) {
        my ($type, $size_hi, $size_lo, $ts_hi, $ts_lo, $ts_ext) = unpack('C C n C n C', substr($data, $at, 8));
        my $size = ($size_hi << 16) | $size_lo;
        last if $at + 11 + $size > length $data;
        my $ts = ($ts_ext << 24) | ($ts_hi << 16) | $ts_lo;
        push @tags, [$type & 0x1f, $ts, substr($data, $at + 11, $size)];
        $at += 11 + $size + 4;
    }
    return @tags;
}

# Starts an FFmpeg publisher in the background; returns its pid.
# Options: loop => 1 (loop the file forever), timeout => seconds (hard limit, default 60),
# file => the FLV to publish (default: media()).
sub publish () {
    my ($url, %opt) = @_;
    my $media = $opt{file} // media();
    my @cmd = ('ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', '-re');
    push @cmd, '-stream_loop', '-1' if $opt{loop};
    push @cmd, '-i', $media, '-c', 'copy', '-f', 'flv', $url;
    return spawn_publisher("publisher $url", $opt{timeout}, @cmd);
}

# Waits for a background child to exit; returns its exit code, or undef if still running after
# $secs seconds (default 30).
sub wait_publisher () {
    my ($pid, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 30);
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid) {
            delete $BG{$pid};
            return exit_code($?);
        }
        return undef if $r < 0;
        return undef if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.05);
    }
}

# Stops a background child (SIGTERM, then SIGKILL after 5 s); returns its exit code.
sub stop () {
    my $pid = shift;
    return undef unless $pid && $BG{$pid};
    kill 'TERM', $pid;
    my $code = wait_publisher($pid, 5);
    return $code if defined $code;
    kill 'KILL', -$pid, $pid;
    return wait_publisher($pid, 5);
}

# The stderr output of a publisher started by publish().
sub publisher_log () {
    my $pid = shift;
    return slurp($PUBLISHER_LOG{$pid} // '');
}

# Probes a stream with ffprobe; returns a hashref { video, width, height, audio, status, stderr }.
sub ffprobe_play () {
    my ($url, $secs) = @_;
    $secs ||= 10;
    my ($code, $out, $err) = run_cmd(
        ['ffprobe', '-v', 'error', '-rw_timeout', '5000000', '-show_entries',
         'stream=codec_type,codec_name,width,height', '-of', 'json', $url],
        timeout => $secs + 5);
    my %r = (status => $code, stderr => $err);
    my $data = eval { JSON::PP::decode_json($out) } || {};
    for my $s (@{ $data->{streams} || [] }) {
        next unless $s->{codec_type};
        if ($s->{codec_type} eq 'video' && !$r{video}) {
            @r{qw(video width height)} = @$s{qw(codec_name width height)};
        } elsif ($s->{codec_type} eq 'audio' && !$r{audio}) {
            $r{audio} = $s->{codec_name};
        }
    }
    return \%r;
}

# Plays $secs seconds of a stream with FFmpeg, decoding every frame.
# Returns ($video_frames, $audio_frames, $stderr); decoding errors show up in $stderr.
sub count_frames () {
    my ($url, $secs) = @_;
    $secs ||= 4;
    my ($code, $out, $err) = run_cmd(
        ['ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', '-rw_timeout', '5000000',
         '-i', $url, '-t', $secs, '-map', '0', '-f', 'framemd5', '-'],
        timeout => $secs + 10);
    my (%type, %n);
    for (split /\n/, $out) {
        if (/^#media_type (\d+): (\w+)/) { $type{$1} = $2; next }
        next if /^#/;
        $n{$1}++ if /^\s*(\d+),/;
    }
    my ($v, $a) = (0, 0);
    for my $idx (keys %n) {
        my $t = $type{$idx} // '';
        $v += $n{$idx} if $t eq 'video';
        $a += $n{$idx} if $t eq 'audio';
    }
    $err .= "\n(ffmpeg exit code $code)" if $code;
    return ($v, $a, $err);
}

# Plays a live stream with rtmpdump for $secs seconds; returns the FLV file written
# (in list context: ($file, $exit_code, $stderr)).
sub rtmpdump_play () {
    my ($url, $secs) = @_;
    $secs ||= 4;
    my $file = tmp_dir() . '/rtmpdump-' . (++$SEQ) . '.flv';
    my ($code, undef, $err) = run_cmd(
        ['rtmpdump', '-q', '--live', '--timeout', '5', '-r', $url, '--stop', $secs, '-o', $file],
        timeout => $secs + 10);
    return wantarray ? ($file, $code, $err) : $file;
}

# Plays a stream with GStreamer (rtmp2src ! flvdemux ! h264parse ! fakesink) for $secs seconds.
# Returns { status => exit code (124: still playing when stopped), buffers => video buffers, stderr }.
sub gst_play () {
    my ($url, $secs) = @_;
    $secs ||= 4;
    my ($code, $out, $err) = run_cmd(
        ['gst-launch-1.0', '-v', 'rtmp2src', "location=$url", '!', 'flvdemux', 'name=d',
         'd.video', '!', 'queue', '!', 'h264parse', '!', 'fakesink', 'name=vsink', 'silent=false',
         'd.audio', '!', 'queue', '!', 'fakesink', 'name=asink'],
        timeout => $secs);
    my $buffers = () = $out =~ /vsink: last-message = chain/g;
    return { status => $code, buffers => $buffers, stderr => $err, stdout => $out };
}

# Runs $code->() in a forked child; result_of($handle) returns what it returned (a list).
sub in_background () {
    my $code = shift;
    my $file = tmp_dir() . '/bg-' . (++$SEQ) . '.sto';
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        POSIX::setpgid(0, 0);
        my @r = eval { $code->() };
        @r = ("died: $@") if $@;
        Storable::nstore(\@r, $file);
        POSIX::_exit(0);
    }
    $BG{$pid} = 'background code';
    return { pid => $pid, file => $file };
}

sub result_of () {
    my ($h, $secs) = @_;
    my $code = wait_publisher($h->{pid}, $secs // 60);
    unless (defined $code) {
        kill 'KILL', -$h->{pid}, $h->{pid};
        wait_publisher($h->{pid}, 5);
        return;
    }
    my $r = eval { Storable::retrieve($h->{file}) } || [];
    return @$r;
}

# ---------------------------------------------------------------------------------------------
# Raw RTMP

sub rtmp_connect_raw () {
    my $port = shift;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
                                 Timeout => 5);
}

sub send_bytes () {
    my ($sock, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($sock, $bytes, length($bytes) - $off, $off);
        return 0 unless defined $n && $n > 0;
        $off += $n;
    }
    return 1;
}

# Reads exactly $n bytes within $secs seconds (default 5); undef on EOF, error or timeout.
sub read_bytes () {
    my ($sock, $n, $secs) = @_;
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + ($secs // 5);
    my $buf = '';
    while (length $buf < $n) {
        my $left = $deadline - Time::HiRes::time();
        return undef if $left <= 0;
        next unless $sel->can_read($left);
        my $r = sysread($sock, $buf, $n - length $buf, length $buf);
        return undef unless $r;
    }
    return $buf;
}

# Reads until the bytes received match $re or $secs seconds (default 5) pass; returns all bytes
# read (true) on a match, undef otherwise (then $_[3], if given, is set to what was read).
sub read_until () {
    my ($sock, $re, $secs) = @_;
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + ($secs // 5);
    my $buf = '';
    while ($buf !~ $re) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0;
        next unless $sel->can_read($left);
        my $r = sysread($sock, $buf, 65536, length $buf);
        last unless $r;
    }
    $_[3] = $buf if @_ > 3;
    return $buf =~ $re ? $buf : undef;
}

# Simple (version 0) handshake: C0 C1, read S0 S1 S2, send C2 = S1.
# Returns { s0, s1, s2, c1 } on success, undef on failure.
sub rtmp_handshake () {
    my ($sock, $secs) = @_;
    my $c1 = pack('NN', 0, 0) . join('', map { chr int rand 256 } 1 .. 1528);
    send_bytes($sock, "\x03" . $c1) or return undef;
    my $s0 = read_bytes($sock, 1, $secs) // return undef;
    my $s1 = read_bytes($sock, 1536, $secs) // return undef;
    my $s2 = read_bytes($sock, 1536, $secs) // return undef;
    send_bytes($sock, $s1) or return undef;
    return { s0 => ord($s0), s1 => $s1, s2 => $s2, c1 => $c1 };
}

# True when the peer closes the connection (EOF or error) within $secs seconds (default 5).
# Anything the server sends meanwhile is read and dropped.
sub is_closed () {
    my ($sock, $secs) = @_;
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + ($secs // 5);
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        return 0 if $left <= 0;
        next unless $sel->can_read($left);
        my $buf;
        my $r = sysread($sock, $buf, 65536);
        return 1 if !defined $r || $r == 0;
    }
}

# One RTMP message as chunks: fmt 0 header, then fmt 3 continuation headers every $chunk_size
# bytes. %opt: length => override the length field, timestamp => ts (< 0xffffff).
sub rtmp_chunk () {
    my ($csid, $type, $msid, $payload, %opt) = @_;
    my $chunk = $opt{chunk_size} || 128;
    my $len = $opt{length} // length $payload;
    my $ts = $opt{timestamp} || 0;
    my $hdr = chr($csid & 0x3f) . substr(pack('N', $ts), 1) . substr(pack('N', $len), 1)
        . chr($type) . pack('V', $msid);
    my $out = $hdr;
    my $first = 1;
    for (my $off = 0; $off < length $payload; $off += $chunk) {
        $out .= chr(0xc0 | ($csid & 0x3f)) unless $first;
        $first = 0;
        $out .= substr($payload, $off, $chunk);
    }
    return $out;
}

sub amf_num ()  { "\x00" . pack('d>', $_[0]) }
sub amf_bool () { "\x01" . chr($_[0] ? 1 : 0) }
sub amf_str ()  { "\x02" . pack('n', length $_[0]) . $_[0] }
sub amf_null () { "\x05" }

# One AMF0 value of $data at $$pos (advanced past it): numbers, booleans (JSON::PP's), strings,
# null/undefined (undef), dates (ms), arrays and objects (hashes).
sub amf0_value () {
    my ($data, $pos) = @_;
    die "AMF0: out of data at $$pos\n" if $$pos >= length $data;
    my $t = ord substr($data, $$pos++, 1);
    my $take = sub {
        my $n = shift;
        die "AMF0: short value at $$pos\n" if $$pos + $n > length $data;
        my $s = substr($data, $$pos, $n);
        $$pos += $n;
        $s;
    };
    return unpack('d>', $take->(8)) if $t == 0;
    return ord($take->(1)) ? JSON::PP::true : JSON::PP::false if $t == 1;
    return $take->(unpack 'n', $take->(2)) if $t == 2;
    return $take->(unpack 'N', $take->(4)) if $t == 12;
    return undef if $t == 5 || $t == 6;
    if ($t == 11) { my $ms = unpack('d>', $take->(8)); $take->(2); return $ms }
    if ($t == 10) { my $n = unpack 'N', $take->(4); return [map { amf0_value($data, $pos) } 1 .. $n] }
    if ($t == 3 || $t == 8) {
        $take->(4) if $t == 8;
        my %o;
        while (1) {
            my $k = $take->(unpack 'n', $take->(2));
            if ($k eq '' && ord(substr($data, $$pos, 1)) == 9) { $$pos++; last }
            $o{$k} = amf0_value($data, $pos);
        }
        return \%o;
    }
    die "AMF0: type $t at " . ($$pos - 1) . "\n";
}

# amf_obj(key => encoded_value, ...) with values already encoded (amf_str(...), amf_num(...)).
sub amf_obj () {
    my @kv = @_;
    my $s = "\x03";
    while (my ($k, $v) = splice @kv, 0, 2) {
        $s .= pack('n', length $k) . $k . $v;
    }
    return $s . "\x00\x00\x09";
}

# ---------------------------------------------------------------------------------------------
# The block runner

sub free_ports () {
    my $n = shift;
    my @socks = map {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
                              Listen => 1, ReuseAddr => 1) or die "cannot allocate a port: $!"
    } 1 .. $n;
    my @ports = map { $_->sockport } @socks;
    close $_ for @socks;
    return @ports;
}

sub subst_vars () {
    my ($text, $vars) = @_;
    return undef unless defined $text;
    $text =~ s/\$(TEST_NGINX_\w+)/exists $vars->{$1} ? $vars->{$1} : "\$$1"/ge;
    return $text;
}

sub run_tests () {
    my $module = module_path();
    if (!-f $module) {
        Test::More::plan(skip_all => "module $module not built (run cargo build --release)");
        return;
    }
    if (!-x $NGINX) {
        Test::More::plan(skip_all => "$NGINX not found (run scripts/setup)");
        return;
    }
    # A plan through Test::Builder::plan (not done_testing) also keeps Test::Base's END block quiet.
    Test::More->builder->plan('no_plan') unless Test::More->builder->has_plan;
    my $base = "$ROOT/target/t/servroot-$$";
    # TEST_NGINX_BLOCKS=3,5: run only those blocks (while working on them).
    my %only = map { $_ => 1 } split /[,\s]+/, $ENV{TEST_NGINX_BLOCKS} // '';
    for my $block (Test::Base::blocks()) {
        next if %only && !$only{ $block->seq_num };
        run_block($block, $base, $module);
    }
    if (!$ENV{TEST_NGINX_NO_CLEAN} && Test::More->builder->is_passing) {
        File::Path::remove_tree($base);
    } else {
        Test::More::diag("server roots kept in $base");
    }
}

sub run_block () {
    my ($block, $base, $module) = @_;
    my $name = $block->name;
    my $prefix = "$base/" . ($block->seq_num // ++$SEQ);
    File::Path::remove_tree($prefix);
    File::Path::make_path("$prefix/conf", "$prefix/logs", "$prefix/html", "$prefix/tmp");
    local $PREFIX = $prefix;
    local %BG;
    local @AUX;

    my @ports = free_ports(3);
    my %vars = (
        TEST_NGINX_RTMP_PORT  => $ports[0],
        TEST_NGINX_RTMP_PORT2 => $ports[1],
        TEST_NGINX_HTTP_PORT  => $ports[2],
        TEST_NGINX_PREFIX     => $prefix,
        TEST_NGINX_ROOT       => $ROOT,
    );
    local @ENV{keys %vars} = values %vars;

    my ($conf, $lines) = build_conf($block, $module, \%vars);
    open my $fh, '>', "$prefix/conf/nginx.conf" or die "$prefix/conf/nginx.conf: $!";
    print $fh $conf;
    close $fh;

    my @nginx = ($NGINX, '-p', "$prefix/", '-c', 'conf/nginx.conf', '-e', 'logs/error.log');
    my ($tcode, $tout, $terr) = run_cmd([@nginx, '-t'], timeout => 20);
    my $toutput = $tout . $terr;

    if (defined $block->must_die) {
        Test::More::isnt($tcode, 0, "$name - nginx -t fails");
        my $re = $block->must_die;
        $re =~ s/^\s+|\s+$//g;
        $re = $1 if $re =~ m{^/(.*)/$}s;
        if (length $re) {
            Test::More::like($toutput, qr/$re/, "$name - nginx -t error matches");
        }
        if (defined $block->must_die_line) {
            my $want = $block->must_die_line;
            $want =~ s/^\s+|\s+$//g;
            my $line_re = '\d+';
            if ($want =~ /^(?:(\w+):)?(\d+)$/) {
                my $sect = $1 // 'config';
                my $start = $lines->{$sect};
                if (defined $start) {
                    $line_re = $start + $2 - 1;
                } else {
                    Test::More::fail("$name - must_die_line names section $sect, not in this block");
                }
            }
            Test::More::like($toutput, qr{\Q$prefix\E/?conf/nginx\.conf:$line_re\b},
                             "$name - error names nginx.conf:$line_re");
        }
        check_logs($block, $name, $prefix, $toutput, 1);
        return;
    }

    unless (Test::More::is($tcode, 0, "$name - nginx -t succeeds")) {
        Test::More::diag($toutput);
        return;
    }

    my ($scode, $sout, $serr) = run_cmd([@nginx], timeout => 20);
    my $startup = $sout . $serr;
    unless (Test::More::is($scode, 0, "$name - nginx starts")) {
        Test::More::diag($startup);
        return;
    }
    my $master = wait_until(sub { my $p = slurp("$prefix/logs/nginx.pid"); $p =~ /(\d+)/ ? $1 : 0 }, 5);
    unless (Test::More::ok($master, "$name - nginx wrote its pid file")) {
        return;
    }

    my $ready = 1;
    my $conf_text = $conf;
    for my $v (qw(TEST_NGINX_RTMP_PORT TEST_NGINX_RTMP_PORT2 TEST_NGINX_HTTP_PORT)) {
        # Only ports nginx listens on (a notify URL may name a test's own server).
        next unless $conf_text =~ /\blisten\s[^;]*\b$vars{$v}\b/;
        my $up = wait_until(sub {
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $vars{$v},
                                          Proto => 'tcp', Timeout => 1);
            close $s if $s;
            return $s ? 1 : 0;
        }, 5);
        $ready &&= $up;
        Test::More::ok($up, "$name - port $v accepts connections") unless $up;
    }
    # A worker shows as one in ps only once it has set its title: wait for all of them.
    my $nworkers = ($block->workers // '') =~ /(\d+)/ ? $1 : 1;
    my @workers_before;
    wait_until(sub { @workers_before = worker_pids($master); @workers_before >= $nworkers }, 5);
    $ready &&= Test::More::ok(scalar(@workers_before), "$name - workers running");

    if ($ready && defined $block->run) {
        my $err = run_code($block, \%vars);
        Test::More::is($err, '', "$name - run code completed") or Test::More::diag($err);
    }
    kill_background();

    if (kill 0, $master) {
        my @workers_after = worker_pids($master);
        if (defined $block->reloads || defined $block->kills_worker) {
            Test::More::is(scalar(@workers_after), scalar(@workers_before),
                           "$name - as many worker processes as before the reload");
        } else {
            Test::More::is("@workers_after", "@workers_before",
                           "$name - worker processes still the same (none crashed)");
        }
    } else {
        Test::More::fail("$name - nginx master still alive");
    }

    stop_nginx(\@nginx, $master, \@workers_before, $name);
    check_logs($block, $name, $prefix, $startup, 0);
}

sub build_conf () {
    my ($block, $module, $vars) = @_;
    my @out;
    my %lines;
    my $add = sub {
        my ($sect, $text) = @_;
        return unless defined $text;
        $text = subst_vars($text, $vars);
        chomp $text;
        $lines{$sect} = @out + 1 if $sect;
        push @out, split /\n/, $text, -1;
    };
    $add->(undef, "load_module $module;") unless defined $block->no_load_module;
    $add->('main_config', $block->main_config) if defined $block->main_config;
    my $workers = $block->workers;
    $workers = 1 unless defined $workers && $workers =~ /\S/;
    $workers =~ s/\s+//g;
    my $level = $block->log_level;
    $level = $ENV{TEST_NGINX_LOG_LEVEL} || 'info' unless defined $level && $level =~ /\S/;
    $level =~ s/\s+//g;
    $add->(undef, join "\n",
        'daemon on;',
        'master_process on;',
        "worker_processes $workers;",
        "error_log logs/error.log $level;",
        'pid logs/nginx.pid;',
        'events { worker_connections 1024; }');
    if (defined $block->config) {
        $add->(undef, 'rtmp {');
        $add->('config', $block->config);
        $add->(undef, '}');
    }
    if (defined $block->http_config) {
        $add->(undef, join "\n",
            'http {',
            '    access_log logs/access.log;',
            '    client_body_temp_path tmp/client_body;',
            '    proxy_temp_path tmp/proxy;',
            '    fastcgi_temp_path tmp/fastcgi;',
            '    uwsgi_temp_path tmp/uwsgi;',
            '    scgi_temp_path tmp/scgi;');
        $add->('http_config', $block->http_config);
        $add->(undef, '}');
    }
    return (join("\n", @out) . "\n", \%lines);
}

sub worker_pids () {
    my $master = shift;
    my ($code, $out) = run_cmd(['ps', '--ppid', $master, '-o', 'pid=,args='], timeout => 5);
    return sort { $a <=> $b } map { /^\s*(\d+)/ ? $1 : () } grep { /worker process/ } split /\n/, $out;
}

# ---------------------------------------------------------------------------------------------
# More nginx instances in one block (an origin, a push target that dies and comes back)

# aux_nginx(RTMP_CONFIG, workers => N, port => P, load => [MODULE.so], main => TEXT): starts another
# nginx with the module under the block's server root; RTMP_CONFIG is the body of its rtmp{} block
# (none when empty), TEXT more top-level configuration (a stream{} block), where $AUX_PORT is
# replaced by its own port (a free one unless given). Returns a handle for aux_start/aux_stop/aux_log; the
# block stops it at its end, and fails if a worker of it crashed.
sub aux_nginx () {
    my ($config, %o) = @_;
    my $port = $o{port} // (free_ports(1))[0];
    my $prefix = "$PREFIX/aux-" . (scalar(@AUX) + 1);
    File::Path::make_path("$prefix/conf", "$prefix/logs");
    $config =~ s/\$AUX_PORT\b/$port/g;
    my $workers = $o{workers} // 1;
    my $module = module_path();
    open my $fh, '>', "$prefix/conf/nginx.conf" or die "$prefix/conf/nginx.conf: $!";
    my $load = join '', map { "load_module $_;\n" } @{ $o{load} // [] };
    my $main = $o{main} // '';
    $main =~ s/\$AUX_PORT\b/$port/g;
    print $fh "load_module $module;\n$load" . "daemon on;\nmaster_process on;\nworker_processes $workers;\n"
        . "error_log logs/error.log info;\npid logs/nginx.pid;\nevents { worker_connections 1024; }\n"
        . "$main\n" . (length $config ? "rtmp {\n$config\n}\n" : '');
    close $fh;
    my $aux = { port => $port, prefix => $prefix,
                nginx => [$NGINX, '-p', "$prefix/", '-c', 'conf/nginx.conf', '-e', 'logs/error.log'] };
    push @AUX, $aux;
    aux_start($aux) or die "aux nginx did not start: " . aux_log($aux);
    return $aux;
}

# (Re)starts an aux nginx; true once its port accepts connections.
sub aux_start () {
    my $aux = shift;
    my ($code, $out, $err) = run_cmd($aux->{nginx}, timeout => 20);
    return 0 if $code != 0;
    return wait_until(sub {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $aux->{port}, Proto => 'tcp', Timeout => 1);
        close $s if $s;
        $s ? 1 : 0;
    }, 5);
}

# Stops an aux nginx at once (its clients see the connection close); true once it is gone.
sub aux_stop () {
    my $aux = shift;
    my $master = slurp("$aux->{prefix}/logs/nginx.pid") =~ /(\d+)/ ? $1 : 0;
    return 1 unless $master && kill 0, $master;
    my @workers = worker_pids($master);
    kill 'TERM', $master;
    my $gone = wait_until(sub { !(kill 0, $master) && !grep { kill 0, $_ } @workers }, 5);
    kill 'KILL', $master, @workers unless $gone;
    unlink "$aux->{prefix}/logs/nginx.pid";
    return $gone;
}

sub aux_log () {
    my $aux = shift;
    return slurp("$aux->{prefix}/logs/error.log");
}

sub kill_background () {
    for my $aux (@AUX) {
        aux_stop($aux);
        my @bad = grep { /\[alert\]|\[emerg\]|\[crit\]|exited on signal/ } split /\n/, aux_log($aux);
        Test::More::ok(!@bad, "aux nginx $aux->{prefix}: no alert, crit or crash in its log")
            or Test::More::diag(join "\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)]);
    }
    @AUX = ();
    for my $pid (keys %BG) {
        kill 'TERM', -$pid, $pid;
    }
    for my $pid (keys %BG) {
        next if defined wait_publisher($pid, 3);
        kill 'KILL', -$pid, $pid;
        wait_publisher($pid, 3);
    }
}

sub stop_nginx () {
    my ($nginx, $master, $workers, $name) = @_;
    run_cmd([@$nginx, '-s', 'quit'], timeout => 10);
    my $gone = sub { !(kill 0, $master) };
    return if wait_until($gone, 5);
    Test::More::diag("$name: nginx did not quit within 5 s, killing it");
    kill 'TERM', $master;
    return if wait_until($gone, 2);
    kill 'KILL', $master, worker_pids($master), @$workers;
    wait_until($gone, 2);
}

sub log_patterns () {
    my $text = shift;
    return () unless defined $text;
    my @p;
    for my $line (split /\n/, $text) {
        next unless $line =~ /\S/;
        $line =~ s/^\s+|\s+$//g;
        if ($line =~ m{^(?:qr)?/(.*)/([imsx]*)$}) {
            my ($re, $fl) = ($1, $2);
            push @p, [$line, $fl ? qr/(?$fl)$re/ : qr/$re/];
        } else {
            push @p, [$line, qr/\Q$line\E/];
        }
    }
    return @p;
}

sub check_logs () {
    my ($block, $name, $prefix, $extra, $must_die) = @_;
    my $log = slurp("$prefix/logs/error.log") . "\n" . ($extra // '');
    for my $p (log_patterns($block->error_log)) {
        Test::More::like($log, $p->[1], "$name - error_log has $p->[0]");
    }
    my @no = log_patterns($block->no_error_log);
    unless ($must_die) {
        push @no, (defined $block->kills_worker ? ['[alert] (but the killed worker)', qr/\[alert\](?!.*exited on signal 9\b)/]
                                                : ['[alert]', qr/\[alert\]/]),
            ['[emerg]', qr/\[emerg\]/], ['[crit]', qr/\[crit\]/],
            (defined $block->kills_worker ? ['exited on signal (but 9)', qr/exited on signal (?!9\b)/]
                                           : ['exited on signal', qr/exited on signal/]),
            ['worker exited with an error', qr/worker process \d+ exited with code [1-9]/];
    }
    my $todo = $block->log_todo;
    $todo =~ s/^\s+|\s+$//g if defined $todo;
    for my $p (@no) {
        my @hits = grep { $_ =~ $p->[1] } split /\n/, $log;
        my $known = defined $todo && @hits;
        Test::More->builder->todo_start($todo) if $known;
        Test::More::ok(!@hits, "$name - error_log has no $p->[0]")
            or Test::More::diag(join "\n", @hits[0 .. ($#hits < 4 ? $#hits : 4)]);
        Test::More->builder->todo_end if $known;
    }
}

sub run_code () {
    my ($block, $vars) = @_;
    my $decl = join '', map { "my \$$_ = '$vars->{$_}'; " } sort keys %$vars;
    my $name = $block->name;
    $name =~ s/["\n]/ /g;
    my $src = "package main; use strict; use warnings; $decl\n#line 1 \"$name --- run\"\n"
        . $block->run . "\n;1;";
    my $ok;
    {
        my $limit = $block->timeout;
        $limit = 180 unless defined $limit && $limit =~ /^\s*\d+\s*$/;
        $limit += 0;
        local $SIG{ALRM} = sub { die "run code timed out after $limit s\n" };
        alarm $limit;
        $ok = eval_in_main($src, $block);
        alarm 0;
    }
    return $ok ? '' : ($@ || 'died');
}

# Kept apart so the run code sees no lexicals of the harness except $block.
sub eval_in_main () {
    my $block = $_[1];
    return eval $_[0];
}

# ---------------------------------------------------------------------------------------------
# More raw RTMP and server probes (added for t/10-bad-peers.t)

push @EXPORT, qw(
    rtmp_basic_header rtmp_message rtmp_raw_connect rtmp_create_stream rtmp_raw_publish
    amf_cmd play_stats decoded_frames log_lines worker_rss
);

# The basic header of a chunk: 1 byte for csid 2..63, 2 bytes for 64..319, 3 bytes up to 65599.
sub rtmp_basic_header () {
    my ($fmt, $csid) = @_;
    my $f = ($fmt & 3) << 6;
    return chr($f | $csid) if $csid < 64;
    return chr($f) . chr($csid - 64) if $csid < 320;
    return chr($f | 1) . pack('v', $csid - 64);
}

# One message as chunks on any csid (2..65599), with a first header of any format, continued by
# fmt 3 chunks every chunk_size bytes. %opt: fmt => 0..3 (default 0), chunk_size (default 128),
# timestamp => absolute (fmt 0) or delta (fmt 1/2), extended (with a 4-byte extended field,
# repeated in the continuation chunks) from 0xffffff up, length => override the length field.
sub rtmp_message () {
    my ($csid, $type, $msid, $payload, %opt) = @_;
    my $fmt = $opt{fmt} // 0;
    my $chunk = $opt{chunk_size} || 128;
    my $len = $opt{length} // length $payload;
    my $ts = $opt{timestamp} // 0;
    my $ext = $ts >= 0xffffff ? pack('N', $ts) : '';
    my $tsf = substr(pack('N', $ext ? 0xffffff : $ts), 1);
    my $out = rtmp_basic_header($fmt, $csid);
    $out .= $tsf if $fmt <= 2;
    $out .= substr(pack('N', $len), 1) . chr($type) if $fmt <= 1;
    $out .= pack('V', $msid) if $fmt == 0;
    $out .= $ext if $fmt <= 2;
    my $first = 1;
    for (my $off = 0; $off < length $payload; $off += $chunk) {
        $out .= rtmp_basic_header(3, $csid) . $ext unless $first;
        $first = 0;
        $out .= substr($payload, $off, $chunk);
    }
    return $out;
}

# An AMF0 command payload: name, transaction id, then the already encoded arguments
# (amf_cmd('play', 4, amf_null(), amf_str('name'))).
sub amf_cmd () {
    my ($name, $tid, @args) = @_;
    return join '', amf_str($name), amf_num($tid), @args;
}

# Connects a new client: handshake and connect to $app, waiting for NetConnection.Connect.Success.
# Returns the socket, or undef (with the reason in $@).
sub rtmp_raw_connect () {
    my ($port, $app, %opt) = @_;
    $app //= 'live';
    my $secs = $opt{timeout} // 5;
    my $s = rtmp_connect_raw($port) or do { $@ = "connect: $!"; return undef };
    rtmp_handshake($s, $secs) or do { $@ = 'handshake failed'; return undef };
    my $cmd = amf_cmd('connect', 1, amf_obj(app => amf_str($app), flashVer => amf_str('LNX 9,0,124,2'),
                                            tcUrl => amf_str("rtmp://127.0.0.1:$port/$app")));
    send_bytes($s, rtmp_chunk(3, 20, 0, $cmd)) or do { $@ = 'send failed'; return undef };
    my $got;
    read_until($s, qr/NetConnection\.Connect\.Success/, $secs, $got)
        or do { $@ = 'no NetConnection.Connect.Success: ' . ($got =~ s/[^ -~]+/./gr); return undef };
    return $s;
}

# createStream with transaction id $tid (default 2) on a connected socket; returns the stream id
# of the _result, or undef.
sub rtmp_create_stream () {
    my ($s, $tid, $secs) = @_;
    $tid //= 2;
    send_bytes($s, rtmp_chunk(3, 20, 0, amf_cmd('createStream', $tid, amf_null()))) or return undef;
    my $want = qr/\x02\x00\x07_result\x00\Q${\ pack('d>', $tid)}\E\x05\x00(.{8})/s;
    my $buf = read_until($s, $want, $secs // 5) // return undef;
    $buf =~ $want;
    return unpack('d>', $1);
}

# A raw publisher: connect, createStream, publish $name; returns (socket, message stream id) once
# NetStream.Publish.Start arrived, or an empty list. The client sends with chunk size
# $opt{chunk_size} (default 4096, announced by Set Chunk Size).
sub rtmp_raw_publish () {
    my ($port, $app, $name, %opt) = @_;
    my $s = rtmp_raw_connect($port, $app) or return;
    my $chunk = $opt{chunk_size} || 4096;
    send_bytes($s, rtmp_chunk(2, 1, 0, pack('N', $chunk))) or return;
    my $msid = rtmp_create_stream($s, 2) // return;
    send_bytes($s, rtmp_chunk(8, 20, $msid, amf_cmd('publish', 3, amf_null(), amf_str($name), amf_str('live')),
                              chunk_size => $chunk)) or return;
    read_until($s, qr/NetStream\.Publish\.Start/, 5) or return;
    return ($s, $msid);
}

# Plays $url with our client for $secs seconds of wall time. Returns a hashref: seconds => [video
# frames received in each full second], video, audio (totals), status, stderr.
sub play_stats () {
    my ($url, $secs, %opt) = @_;
    my ($code, $out, $err) = run_cmd([rtmp_cli(), 'play', $url, '--duration', $secs,
                                      '--idle-timeout', $opt{idle} // 10], timeout => $secs + 15);
    my @per = map { /video\s+(\d+) fr/ ? $1 : () } grep { /^\[\s*\d+s\]/ } split /\n/, $err;
    my ($v, $a) = $err =~ /done.*?: (\d+) video, (\d+) audio/ ? ($1, $2) : (0, 0);
    return { seconds => \@per, video => $v, audio => $a, status => $code, stderr => $err };
}

# The lines of the running block's error log that match $re.
sub log_lines () {
    my $re = shift;
    return grep { $_ =~ $re } split /\n/, slurp("$PREFIX/logs/error.log");
}

# The running block's master pid (0 when nginx wrote none).
sub master_pid () {
    return slurp("$PREFIX/logs/nginx.pid") =~ /(\d+)/ ? $1 : 0;
}

# The running block's first worker pid (undef when there is none).
sub worker_pid () {
    my ($w) = worker_pids(master_pid() || return);
    return $w;
}

# Resident memory (kB) of the running block's nginx worker(s), summed.
sub worker_rss () {
    my $master = master_pid() or return 0;
    my $sum = 0;
    for my $pid (worker_pids($master)) {
        $sum += $1 if slurp("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
    }
    return $sum;
}

# Decodes a stream with ffprobe until it ends (the server closes it) or $secs seconds pass, every
# frame whatever its timestamp. Returns ($video_frames, $audio_frames, $stderr).
sub decoded_frames () {
    my ($url, $secs) = @_;
    $secs ||= 20;
    my ($code, $out, $err) = run_cmd(
        ['ffprobe', '-v', 'error', '-rw_timeout', '5000000', '-count_frames', '-show_entries',
         'stream=codec_type,nb_read_frames', '-of', 'json', $url], timeout => $secs);
    my ($v, $a) = (0, 0);
    my $data = eval { JSON::PP::decode_json($out) } || {};
    for my $st (@{ $data->{streams} || [] }) {
        $v += $st->{nb_read_frames} || 0 if ($st->{codec_type} // '') eq 'video';
        $a += $st->{nb_read_frames} || 0 if ($st->{codec_type} // '') eq 'audio';
    }
    $err .= "\n(ffprobe exit code $code)" if $code;
    return ($v, $a, $err);
}


# ---------------------------------------------------------------------------------------------
# Waiting for the server instead of sleeping: these poll the running block's error log for the
# live module's info lines, so the block's log level must be info (the default) or debug.

push @EXPORT, qw(wait_log wait_published wait_playing wait_unpublished master_pid worker_pid);

# Waits until at least $n (default 1) lines of the error log match $re, for at most $secs seconds
# (default 15). Returns how many lines match once there are enough, 0 after the deadline.
sub wait_log () {
    my ($re, $n, $secs) = @_;
    $n //= 1;
    my $got = 0;
    return wait_until(sub { $got = () = log_lines($re); $got >= $n }, $secs // 15, 0.05) ? $got : 0;
}

# The server accepted the $n-th (default: first) publish of stream $name
# ("rtmp: live: publish "NAME" (live)"; a takeover logs that line too).
sub wait_published () {
    my ($name, $n, $secs) = @_;
    return wait_log(qr/rtmp: live: publish "\Q$name\E" \(/, $n, $secs);
}

# $n (default 1) plays of stream $name were accepted ("rtmp: live: play "NAME"").
sub wait_playing () {
    my ($name, $n, $secs) = @_;
    return wait_log(qr/rtmp: live: play "\Q$name\E"/, $n, $secs);
}

# The $n-th (default: first) publish of stream $name ended ("rtmp: live: unpublish "NAME"").
sub wait_unpublished () {
    my ($name, $n, $secs) = @_;
    return wait_log(qr/rtmp: live: unpublish "\Q$name\E"/, $n, $secs);
}


# ---------------------------------------------------------------------------------------------
# Real-browser HLS playback (added for t/13-hls-browser.t)

push @EXPORT, qw(browser_play_hls);

# Plays an HLS page in headless Chromium (t/browser/hls_play.py: Debian's chromium, chromedriver and
# python3-selenium, installed by scripts/setup) and returns its JSON report as a hashref
# { started, start_time, end_time, advanced_s, width, height, fatal_errors => [...],
#   nonfatal_error_count, stalls, ... }, or undef (with a diag) when the browser did not run.
# $page_url is e.g. "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/web/hls.html?src=/hls/test.m3u8".
# The page is served from the block's server root: this copies t/web/* and the pinned hls.js
# (target/web/hls.min.js, fetched by scripts/setup, run here when it is missing) into
# $TEST_NGINX_PREFIX/html/web/, so the block's http_config needs `location /web/ { root html; }`.
# %opts: seconds => playback watched (default 15), start_timeout => wait for playback to start
# (default 20), screenshot => PNG path, relative to the repository root (default
# target/hls-browser.png).
sub browser_play_hls () {
    my ($page_url, %opt) = @_;
    my $secs = $opt{seconds} // 15;
    my $start = $opt{start_timeout} // 20;
    my $shot = $opt{screenshot} // 'target/hls-browser.png';
    $shot = "$ROOT/$shot" unless $shot =~ m{^/};
    my $hlsjs = "$ROOT/target/web/hls.min.js";
    system("$ROOT/scripts/setup") unless -s $hlsjs;
    my $web = ($PREFIX // "$ROOT/target/t") . '/html/web';
    File::Path::make_path($web);
    for my $src (glob("$ROOT/t/web/*"), $hlsjs) {
        my $data = slurp($src);
        unless (length $data) {
            Test::More::diag("browser_play_hls: $src is missing or empty");
            return undef;
        }
        my $dst = "$web/" . File::Basename::basename($src);
        open my $fh, '>', $dst or do { Test::More::diag("browser_play_hls: $dst: $!"); return undef };
        binmode $fh;
        print $fh $data;
        close $fh;
    }
    my ($code, $out, $err) = run_cmd(
        ['/usr/bin/python3', "$ROOT/t/browser/hls_play.py", '--url', $page_url, '--seconds', $secs,
         '--start-timeout', $start, '--screenshot', $shot],
        timeout => $secs + $start + 80);
    my ($line) = grep { /^\{/ } reverse split /\n/, $out;
    my $r = defined $line ? eval { JSON::PP::decode_json($line) } : undef;
    if ($code || !$r) {
        $err = substr($err, -2000) if length $err > 2000;
        Test::More::diag("browser_play_hls: hls_play.py exit code $code"
                         . ($r && $r->{error} ? ": $r->{error}" : '') . "\n$out$err");
        return undef;
    }
    Test::More::diag("browser_play_hls: $r->{error}") if $r->{error};
    return $r;
}

1;
