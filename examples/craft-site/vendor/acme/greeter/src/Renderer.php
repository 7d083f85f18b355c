<?php

namespace Acme\Greeter;

/**
 * A minimal template renderer: replaces {{ name }} with the HTML-escaped
 * value of $vars['name']. Unknown names render as an empty string.
 */
final class Renderer
{
    public function __construct(private string $templatesPath)
    {
    }

    /**
     * @param array<string, scalar|null> $vars
     */
    public function render(string $template, array $vars): string
    {
        $file = $this->templatesPath . '/' . $template;
        // Templates come from the project only: no "../" in names.
        if (str_contains($template, '..') || !is_file($file)) {
            throw new \RuntimeException("Template not found: $template");
        }
        $source = file_get_contents($file);

        return preg_replace_callback(
            '/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/',
            static fn (array $m): string => htmlspecialchars(
                (string) ($vars[$m[1]] ?? ''),
                ENT_QUOTES | ENT_SUBSTITUTE | ENT_HTML5,
                'UTF-8'
            ),
            $source
        );
    }
}
