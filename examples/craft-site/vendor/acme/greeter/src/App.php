<?php

namespace Acme\Greeter;

/**
 * The tiny application behind web/index.php: routes the request path
 * (the way Craft's front controller does), renders a template, writes to
 * storage and sends the response.
 */
final class App
{
    private Renderer $renderer;
    private Storage $storage;

    /**
     * @param array{siteName: string, environment: string, devMode: bool,
     *              storagePath: string, templatesPath: string} $config
     */
    public function __construct(private array $config)
    {
        $this->renderer = new Renderer($config['templatesPath']);
        $this->storage = new Storage($config['storagePath']);
    }

    /**
     * @param array<string, mixed> $server $_SERVER
     */
    public function run(array $server): void
    {
        $path = (string) parse_url((string) ($server['REQUEST_URI'] ?? '/'), PHP_URL_PATH);
        $path = '/' . trim(rawurldecode($path), '/');
        $method = (string) ($server['REQUEST_METHOD'] ?? 'GET');
        $now = new \DateTimeImmutable('now', new \DateTimeZone('UTC'));

        [$status, $type, $body] = $this->handle($path, $server, $now);

        $this->storage->log(sprintf(
            '%s %s %s %s %d',
            $now->format('Y-m-d\TH:i:s\Z'),
            $server['REMOTE_ADDR'] ?? '-',
            $method,
            $this->oneLine((string) ($server['REQUEST_URI'] ?? '/')),
            $status
        ));

        http_response_code($status);
        header('Content-Type: ' . $type);
        header('Cache-Control: no-store');
        echo $body;
    }

    /**
     * @return array{int, string, string} status, content type, body
     */
    private function handle(string $path, array $server, \DateTimeImmutable $now): array
    {
        $vars = [
            'siteName' => $this->config['siteName'],
            'environment' => $this->config['environment'],
            'phpVersion' => PHP_VERSION,
            'sapi' => PHP_SAPI,
            'path' => $path,
        ];

        switch ($path) {
            case '/':
            case '/index.php':
                $count = $this->storage->nextRequestNumber();
                $writable = $this->storage->isWritable();
                $html = $this->renderer->render('index.html', $vars + [
                    'greeting' => (new Greeter($this->config['siteName']))->greet($now),
                    'requestCount' => $count ?? 'n/a',
                    'time' => $now->format('Y-m-d H:i:s') . ' UTC',
                    'storageClass' => $writable ? 'status-ok' : 'status-ro',
                    'storageStatus' => $writable
                        ? 'writable (page cached in storage/runtime/cache, request logged in storage/logs/web.log)'
                        : 'NOT writable: page rendered without cache and log',
                ]);
                $this->storage->cachePage($html);

                return [200, 'text/html; charset=utf-8', $html];

            case '/about':
                return [200, 'text/html; charset=utf-8', $this->renderer->render('about.html', $vars + [
                    'clientAddress' => (string) ($server['REMOTE_ADDR'] ?? 'unknown'),
                ])];

            case '/health':
                return [200, 'text/plain; charset=utf-8', "ok\n"];

            default:
                return [404, 'text/html; charset=utf-8', $this->renderer->render('404.html', $vars)];
        }
    }

    private function oneLine(string $s): string
    {
        return substr(preg_replace('/[^\x21-\x7e]/', '?', $s), 0, 200);
    }
}
