# Evaluates a Vagrantfile (read from stdin, after this script) against a recording stand-in for Vagrant's
# configuration DSL and prints what it recorded as JSON. It runs where untrusted code may
# run (inside the lab guest, as nobody): it never touches a provider or the network.
# Usage: ruby vagrant_eval.rb DISPLAY_NAME < Vagrantfile
require 'json'

module LvsHarness
  # Swallows any call chain we do not model (provider blocks, ssh settings, triggers...).
  class Anything < BasicObject
    def method_missing(*_args, **_kw, &blk)
      blk&.call(Anything.new, Anything.new)
      self
    end

    def respond_to_missing?(*) = true
    def to_s = ''
    def to_str = ''
    def to_ary = []
  end

  # Settings we do not model (vm.provider options, ssh, triggers...) are accepted and ignored.
  module IgnoresTheRest
    def method_missing(*_args, **_kw, &blk)
      blk&.call(Anything.new)
      Anything.new
    end

    def respond_to_missing?(*) = true
  end

  class ProvisionerConfig
    attr_reader :data

    def initialize(type, opts)
      @data = { 'type' => type.to_s }
      opts.each { |k, v| @data[k.to_s] = v }
    end

    def method_missing(name, *args, &_blk)
      key = name.to_s
      if key.end_with?('=')
        @data[key.chomp('=')] = args.first
        return args.first
      end
      @data.key?(key) ? @data[key] : Anything.new
    end

    def respond_to_missing?(*) = true
  end

  class VMConfig
    attr_reader :data
    attr_accessor :box, :box_version, :box_url, :boot_timeout, :communicator, :guest, :post_up_message

    def initialize
      @data = { 'networks' => [], 'provisioners' => [], 'hostname' => nil }
      @defines = []
    end

    def defines = @defines

    def hostname=(value)
      @data['hostname'] = value.to_s
    end

    def hostname = @data['hostname']

    def network(type, **opts)
      @data['networks'] << { 'type' => type.to_s, 'options' => opts.transform_keys(&:to_s) }
    end

    def provision(name_or_type, **opts, &blk)
      type = opts.delete(:type) || name_or_type
      prov = ProvisionerConfig.new(type, opts)
      prov.data['name'] = name_or_type.to_s if opts.key?(:type) || type != name_or_type
      blk&.call(prov)
      @data['provisioners'] << prov.data
      prov
    end

    def define(name, **_opts, &blk)
      machine = Config.new
      blk&.call(machine)
      @defines << { 'name' => name.to_s, 'vm' => machine.vm.data }
    end

    def provider(*_args, **_kw, &blk)
      blk&.call(Anything.new, Anything.new)
    end

    def synced_folder(*_args, **_kw); end

    include IgnoresTheRest
  end

  class Config
    def vm = (@vm ||= VMConfig.new)

    include IgnoresTheRest
  end

  CONFIGS = []
end

module Vagrant
  def self.configure(_version)
    config = LvsHarness::Config.new
    yield config
    LvsHarness::CONFIGS << config
  end

  def self.require_version(*) = true
  def self.has_plugin?(*) = false
end

name = ARGV[0] || 'Vagrantfile'
source = $lvsh_source   # the Vagrantfile, after this script on stdin (see vagrantfile.evaluate)
# what the Vagrantfile prints is nobody's business (and could be endless): only the record is printed
record = $stdout.dup
$stdout.reopen(File::NULL)
begin
  eval(source, TOPLEVEL_BINDING, name, 1) # rubocop:disable Security/Eval
rescue ScriptError, StandardError => e
  line = e.is_a?(SyntaxError) ? e.message[/:(\d+):/, 1] : e.backtrace_locations&.find { |l| l.path == name }&.lineno
  line ||= e.backtrace&.map { |b| b[/\A#{Regexp.escape(name)}:(\d+)/, 1] }&.compact&.first
  msg = e.message.lines.first.to_s.strip.sub(/\A#{Regexp.escape(name)}:\d+:\s*/, '')
  record.puts JSON.generate({ 'error' => "#{e.class}: #{msg}", 'line' => line&.to_i })
  exit 0
end

result = LvsHarness::CONFIGS.map { |c| { 'vm' => c.vm.data, 'defines' => c.vm.defines } }
record.puts JSON.generate({ 'configs' => result })
