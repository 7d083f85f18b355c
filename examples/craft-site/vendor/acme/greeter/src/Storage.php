<?php

namespace Acme\Greeter;

/**
 * The app's writable storage (Craft's storage/): a page cache, a request
 * counter and a log. Every operation tolerates a read-only storage: the
 * site must still render, it only reports that it could not write.
 */
final class Storage
{
    private ?bool $writable = null;

    public function __construct(private string $path)
    {
    }

    /** True if storage/ accepts writes (checked once per request). */
    public function isWritable(): bool
    {
        if ($this->writable === null) {
            $this->writable = $this->ensureDir('runtime/cache') && $this->ensureDir('logs');
        }

        return $this->writable;
    }

    /** Increments and returns the request counter, or null if read-only. */
    public function nextRequestNumber(): ?int
    {
        if (!$this->isWritable()) {
            return null;
        }
        $fh = @fopen($this->path . '/runtime/requests.txt', 'c+');
        if ($fh === false) {
            return null;
        }
        try {
            if (!flock($fh, LOCK_EX)) {
                return null;
            }
            $n = (int) stream_get_contents($fh) + 1;
            ftruncate($fh, 0);
            rewind($fh);
            fwrite($fh, (string) $n);
            fflush($fh);
            flock($fh, LOCK_UN);

            return $n;
        } finally {
            fclose($fh);
        }
    }

    /** Stores the last rendered page (storage/runtime/cache/page.html). */
    public function cachePage(string $html): bool
    {
        return $this->isWritable()
            && @file_put_contents($this->path . '/runtime/cache/page.html', $html, LOCK_EX) !== false;
    }

    /** Appends one line to storage/logs/web.log. */
    public function log(string $line): bool
    {
        return $this->isWritable()
            && @file_put_contents($this->path . '/logs/web.log', $line . "\n", FILE_APPEND | LOCK_EX) !== false;
    }

    private function ensureDir(string $relative): bool
    {
        $dir = $this->path . '/' . $relative;
        if (!is_dir($dir) && !@mkdir($dir, 0775, true) && !is_dir($dir)) {
            return false;
        }

        return is_writable($dir);
    }
}
